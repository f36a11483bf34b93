#!/usr/bin/python3
"""bench.py - the submilter benchmark: every server on loopback, one table.

Started by t/bench/run (which builds the helpers and installs Haraka), never
by make check or CI. Phases:
  1. checks and memory: a dumping smtp-sink; one message through every
     scenario (it must arrive, and signed where the scenario signs, with a
     signature dkimpy verifies); the 50 MB message; 1,000 idle sessions.
  2. throughput: a discarding smtp-sink; every point (sessions x messages per
     connection) run for each scenario side by side, the direct run first, so
     each figure has a reference taken the same minute.
Load: Postfix's smtp-source for 1 message per connection, t/bench/drive for
10 per connection (smtp-source cannot end a connection after N messages).
Latency: t/bench/lat.so inside smtp-source, drive's own timing otherwise.
RSS: VmHWM of the server process (reset through clear_refs before each
point); for multi-process servers (Postfix) the peak of the summed PSS of
the whole process tree, sampled every 100 ms.
It does not build submilter, and it never talks to anything but loopback.
"""
import argparse
import glob
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PORT_SINK = 24025
PORT_SUBM = {'subm-pass': 24101, 'subm-rsa': 24102, 'subm-ed25519': 24103}
PORT_HARAKA = {'haraka-bare': 24201, 'haraka-dkim': 24202}
PORT_PF = {'pf': 24301, 'pf-subm-empty': 24302, 'pf-subm-rsa': 24303,
           'pf-opendkim': 24304, 'pf-null': 24305}
PORT_IDLE_HARAKA = 24203
DOMAIN = 'example.com'
SELECTOR = {'rsa': 'brsa', 'ed25519': 'bed'}
MAIL_FROM = 'sender@example.com'
RCPT_TO = 'rcpt@example.net'

# (name, label, reference scenario for its ratio)
SCENARIOS = [
    ('direct', 'direct: smtp-source -> smtp-sink', None),
    ('subm-pass', 'submilter smtp, empty chain', 'direct'),
    ('subm-rsa', 'submilter smtp, default chain + DKIM rsa-2048', 'direct'),
    ('subm-ed25519', 'submilter smtp, default chain + DKIM ed25519', 'direct'),
    ('haraka-bare', 'Haraka smtp_forward', 'direct'),
    ('haraka-dkim', 'Haraka + relay, headers, dkim (sign rsa-2048, verify)', 'direct'),
    ('pf', 'Postfix smtpd, no milter', 'direct'),
    ('pf-null', 'Postfix + null milter (floor: accepts at CONNECT)', 'pf'),
    ('pf-subm-empty', 'Postfix + submilter milter, empty chain', 'pf'),
    ('pf-subm-rsa', 'Postfix + submilter milter, DKIM rsa-2048', 'pf'),
    ('pf-opendkim', 'Postfix + OpenDKIM, rsa-2048', 'pf'),
]
POINTS = [(1, 1), (1, 10), (20, 1), (20, 10), (100, 1), (100, 10)]
# scenarios measured in turn, round by round (see Bench.measure_group)
GROUPS = [('direct', 'subm-pass'), ('subm-rsa', 'subm-ed25519'),
          ('haraka-bare', 'haraka-dkim'),
          ('pf', 'pf-null', 'pf-subm-empty', 'pf-subm-rsa', 'pf-opendkim')]


def log(*a):
    print(time.strftime('%H:%M:%S'), *a, flush=True)


# ---------------------------------------------------------------- processes

class Procs:
    """procs - every process we start, stopped by PID at the end."""

    def __init__(self):
        self.live = []          # (name, Popen or None, pid, stop function)

    def add(self, name, popen=None, pid=None, stop=None):
        self.live.append((name, popen, pid if pid else popen.pid, stop))

    def stop(self, name):
        for item in list(self.live):
            if item[0] == name:
                self._stop(item)
                self.live.remove(item)

    def stop_all(self):
        for item in reversed(self.live):
            self._stop(item)
        self.live = []

    @staticmethod
    def _stop(item):
        name, popen, pid, stop = item
        if stop is not None:
            try:
                stop()
            except Exception as e:      # keep stopping the others
                log('stop', name, 'failed:', e)
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(50):
            if popen is not None and popen.poll() is not None:
                return
            if popen is None and not pid_alive(pid):
                return
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
            if popen is not None:
                popen.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def pid_alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_ready(check, what, popen=None, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        if popen is not None and popen.poll() is not None:
            raise RuntimeError('%s exited with %s' % (what, popen.returncode))
        time.sleep(0.05)
    raise RuntimeError('%s not ready after %ss' % (what, timeout))


def port_open(port):
    def check():
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            return False
    return check


def tail(path, n=15):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-n:])
    except OSError:
        return ''


# -------------------------------------------------------------- RSS sampling

def status_kib(pid, field):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open('/proc/%d/smaps_rollup' % pid) as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_hwm(pid):
    try:
        with open('/proc/%d/clear_refs' % pid, 'w') as f:
            f.write('5')
    except OSError:
        pass


def cpu_ticks(pid, reaped=False):
    """utime+stime of pid (all its threads), or with reaped its dead
    children's cutime+cstime, in clock ticks."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0
    # fields[0] is field 3 (state): utime is field 14, cutime 16
    if reaped:
        return int(fields[13]) + int(fields[14])
    return int(fields[11]) + int(fields[12])


def client_cpu():
    """CPU seconds of the load generators we ran and reaped."""
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def children_map():
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root, kids):
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


class Sampler(threading.Thread):
    """sampler - peak memory of servers during one point.

    Single-process servers: VmHWM after a clear_refs reset (exact peak).
    Process trees: the largest sum of PSS (shared pages split between the
    processes that map them) over the tree seen in 100 ms samples, and the
    largest number of processes."""

    def __init__(self, servers):
        super().__init__(daemon=True)
        self.servers = servers      # [(label, pid, is_tree)]
        self.peak = {label: 0 for label, _, _ in servers}
        self.nproc = {label: 1 for label, _, _ in servers}
        self.stop_ev = threading.Event()
        for _, pid, _ in servers:
            reset_hwm(pid)
        self.cpu0 = self.cpu()
        self.client0 = client_cpu()

    def cpu(self):
        """seconds of CPU used so far by each server (trees: every live
        process plus what the root reaped from its dead children)."""
        kids = children_map() if any(t for _, _, t in self.servers) else {}
        out = {}
        for label, pid, is_tree in self.servers:
            if is_tree:
                t = sum(cpu_ticks(p) for p in tree(pid, kids)) + cpu_ticks(pid, True)
            else:
                t = cpu_ticks(pid)
            out[label] = t / float(os.sysconf('SC_CLK_TCK'))
        return out

    def run(self):
        if not any(t for _, _, t in self.servers):
            return
        while not self.stop_ev.is_set():
            kids = children_map()
            for label, pid, is_tree in self.servers:
                if not is_tree:
                    continue
                pids = tree(pid, kids)
                total = sum(pss_kib(p) for p in pids)
                self.peak[label] = max(self.peak[label], total)
                self.nproc[label] = max(self.nproc[label], len(pids))
            self.stop_ev.wait(0.1)

    def finish(self):
        self.stop_ev.set()
        self.join()
        now = self.cpu()
        self.cpu_each = {k: now[k] - self.cpu0.get(k, 0) for k in now}
        self.cpu_used = sum(self.cpu_each.values())
        self.client_used = client_cpu() - self.client0
        for label, pid, is_tree in self.servers:
            if not is_tree:
                self.peak[label] = status_kib(pid, 'VmHWM')
        return self.peak, self.nproc


# ------------------------------------------------------------------- load

def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


class Load:
    """load - runs smtp-source or drive against one address, in chunks.

    A point is at least `count` messages or, for slow servers, what fits in
    `cap` seconds: chunks are sized from the rate seen so far, the first is
    one connection per session."""

    def __init__(self, opts, msgfile):
        self.o = opts
        self.msgfile = msgfile

    def chunk(self, port, sessions, per_conn, n, latfile):
        env = dict(os.environ)
        if per_conn == 1:
            cmd = ['smtp-source', '-s', str(sessions), '-m', str(n),
                   '-F', self.msgfile, '-f', MAIL_FROM, '-t', RCPT_TO,
                   '-M', 'bench.example.com', '127.0.0.1:%d' % port]
            env['LD_PRELOAD'] = self.o.lat_so
            env['BENCH_LAT_FILE'] = latfile
        else:
            cmd = [self.o.drive, '-s', str(sessions), '-n', str(per_conn),
                   '-m', str(n), '-F', self.msgfile, '-f', MAIL_FROM,
                   '-t', RCPT_TO, '-o', latfile, '127.0.0.1:%d' % port]
        if os.path.exists(latfile):
            os.unlink(latfile)
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               timeout=self.o.cap * 4 + 60)
        except subprocess.TimeoutExpired:
            p = subprocess.CompletedProcess(cmd, -9, '', 'load generator killed: '
                                            'no progress for %d s' % (self.o.cap * 4 + 60))
        secs = time.monotonic() - t0
        lats, fails = [], 0
        try:
            with open(latfile) as f:
                for line in f:
                    us, code = line.split()
                    lats.append(int(us))
                    if code != '2':
                        fails += 1
        except OSError:
            pass
        if per_conn > 1:
            m = re.search(r'secs=([0-9.]+)', p.stdout)
            if m:
                secs = float(m.group(1))
        err = None
        if p.returncode != 0 or fails or len(lats) != n:
            err = 'rc=%d, %d of %d timed, %d failed: %s' % (
                p.returncode, len(lats), n, fails,
                (p.stderr.strip().splitlines() or [''])[-1][:200])
        ok = len(lats) - fails
        return ok, secs, lats, err

    def point(self, port, sessions, per_conn, count, cap):
        done, secs, lats, errs = 0, 0.0, [], []
        n = max(sessions * per_conn, 50)
        latfile = os.path.join(self.o.rundir, 'lat.txt')
        while done < count:
            n = min(n, count - done)
            ok, s, l, err = self.chunk(port, sessions, per_conn, n, latfile)
            done += ok
            secs += s
            lats.extend(l)
            if err:
                errs.append(err)
                break
            if secs >= cap or done >= count:
                break
            rate = done / secs if secs > 0 else 1000.0
            left = cap - secs
            n = int(rate * left * 0.95)
            group = sessions * per_conn
            n = max(group, (n // group) * group)
            if n > count - done:
                n = count - done
            if rate * left < group and done >= group:
                break           # another full round would pass the cap
        lats.sort()
        return {'msgs': done, 'secs': secs,
                'rate': done / secs if secs > 0 else 0.0,
                'p50': percentile(lats, 0.50), 'p99': percentile(lats, 0.99),
                'lats': lats, 'err': '; '.join(errs) if errs else None}


# ----------------------------------------------------------------- set-up

class Bench:
    def __init__(self, o):
        self.o = o
        self.procs = Procs()
        self.rows = {}          # (scenario, sessions, per_conn) -> result
        self.notes = []         # lines for the results file
        self.skipped = {}       # scenario -> reason (this phase)
        self.first_skip = {}    # the same, of phase 1
        self.check_failed = set()
        self.profiles = []      # (scenario, text)
        self.checks = []        # (what, result text, ok)
        self.memory = []        # (what, result text)
        self.pids = {}          # scenario -> [(label, pid, is_tree)]
        self.rd = o.rundir
        self.keys = {}
        self.msgfile = os.path.join(self.rd, 'msg4k.eml')
        self.make_message(self.msgfile, 4096)
        self.link_conf_files()
        self.make_keys()

    # -- inputs
    @staticmethod
    def make_message(path, size, body_char=None):
        head = ('From: Bench Sender <%s>\nTo: <%s>\nSubject: submilter bench\n'
                'Date: Tue, 01 Dec 2026 13:00:00 +0000\n'
                'Message-ID: <bench.%d@example.com>\nMIME-Version: 1.0\n'
                'Content-Type: text/plain; charset=us-ascii\n\n'
                % (MAIL_FROM, RCPT_TO, size))
        line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklm.\n'
        with open(path, 'w') as f:
            f.write(head)
            left = size - len(head)
            full = left // len(line)
            chunk = line * 1000
            while full >= 1000:
                f.write(chunk)
                full -= 1000
            f.write(line * full)
            left -= (left // len(line)) * len(line)
            if left > 0:
                f.write('x' * (left - 1) + '\n')

    def make_keys(self):
        kd = os.path.join(self.rd, 'keys')
        os.makedirs(kd, exist_ok=True)
        rsa = os.path.join(kd, 'rsa.private')
        ed = os.path.join(kd, 'ed25519.private')
        subprocess.run(['openssl', 'genrsa', '-out', rsa, '2048'], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run(['openssl', 'genpkey', '-algorithm', 'ed25519', '-out', ed],
                       check=True, stderr=subprocess.DEVNULL)
        for p in (rsa, ed):
            os.chmod(p, 0o600)
        os.chmod(kd, 0o755)
        self.keys = {'rsa': rsa, 'ed25519': ed}
        # public key records for the dkimpy check
        pub = subprocess.run(['openssl', 'rsa', '-in', rsa, '-pubout', '-outform', 'DER'],
                             check=True, capture_output=True).stdout
        import base64
        self.dns = {
            '%s._domainkey.%s.' % (SELECTOR['rsa'], DOMAIN):
                b'v=DKIM1; k=rsa; p=' + base64.b64encode(pub)}
        der = subprocess.run(['openssl', 'pkey', '-in', ed, '-pubout', '-outform', 'DER'],
                             check=True, capture_output=True).stdout
        self.dns['%s._domainkey.%s.' % (SELECTOR['ed25519'], DOMAIN)] = (
            b'v=DKIM1; k=ed25519; p=' + base64.b64encode(der[-32:]))

    # -- sink
    def start_sink(self, dump_dir=None):
        if not port_free(PORT_SINK):
            raise RuntimeError('port %d is taken' % PORT_SINK)
        cmd = ['smtp-sink', '-u', 'nobody', '-m', '3000', '-t', '600']
        if dump_dir:
            os.makedirs(dump_dir, exist_ok=True)
            os.chmod(dump_dir, 0o777)
            cmd += ['-d', os.path.join(dump_dir, '%H%M%S.')]
        cmd += ['127.0.0.1:%d' % PORT_SINK, '4096']
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.rd, 'sink.log'), 'a'))
        self.procs.add('sink', p)
        wait_ready(port_open(PORT_SINK), 'smtp-sink', p)
        self.pids['direct'] = [('smtp-sink', p.pid, False)]

    # -- submilter
    def plugin_have(self, name):
        return os.path.exists(os.path.join(self.o.plugin_dir, name + '.so'))

    def link_conf_files(self):
        """relative paths in conf/submilter.conf's plugin blocks are relative
        to the config's folder: make conf/'s files visible from ours."""
        src = os.path.join(self.o.srcdir, 'conf')
        for fn in os.listdir(src) if os.path.isdir(src) else []:
            dst = os.path.join(self.rd, fn)
            if not os.path.exists(dst) and not fn.startswith('Makefile'):
                os.symlink(os.path.join(src, fn), dst)

    def subm_conf(self, name, smtp_port=None, milter_sock=None, chain=''):
        conf = os.path.join(self.rd, name + '.conf')
        spool = os.path.join(self.rd, 'spool-' + name)
        os.makedirs(spool, exist_ok=True)
        text = ['plugin_dir = "%s"' % self.o.plugin_dir,
                'spool_dir = "%s"' % spool,
                'hostname = "bench.example.com"',
                'pid_file = "%s"' % os.path.join(self.rd, name + '.pid')]
        if smtp_port:
            text += ['smtp {',
                     '    listen = {"127.0.0.1:%d"}' % smtp_port,
                     '    hostname = "bench.example.com"',
                     '    backend = "127.0.0.1:%d"' % PORT_SINK,
                     '    max_sessions = 3000',
                     '    max_sessions_per_ip = 3000',
                     '    max_message_size = 100M',
                     '}']
        if milter_sock:
            text += ['milter {', '    listen = "unix:%s"' % milter_sock, '}']
        text.append(chain)
        with open(conf, 'w') as f:
            f.write('\n'.join(text) + '\n')
        return conf, spool

    def dkim_chain(self, alg, default_chain):
        """the plugin blocks of a signing chain (the default chain of
        conf/submilter.conf, made to fit loopback traffic, when asked)."""
        table = os.path.join(self.rd, 'dkim-%s.keys' % alg)
        with open(table, 'w') as f:
            # PATTERN DOMAIN SELECTOR KEYFILE (plugins/dkim/dkim_keys.h)
            f.write('%s %s %s %s\n' % (DOMAIN, DOMAIN, SELECTOR[alg], self.keys[alg]))
        if not default_chain:
            return 'plugin dkim { sign_table = "%s" }' % table
        return self.o.default_chain.replace('@SIGN_TABLE@', table)

    def start_submilter(self, name, conf, ready, spool):
        logf = os.path.join(self.rd, name + '.log')
        cmd = [self.o.submilter, '-f', '-c', conf]
        chk = subprocess.run([self.o.submilter, '-t', '-c', conf],
                             capture_output=True, text=True)
        if chk.returncode != 0:
            raise RuntimeError('submilter -t refused %s: %s' % (
                conf, (chk.stdout + chk.stderr).strip()[-400:]))
        p = subprocess.Popen(cmd, stdout=open(logf, 'a'), stderr=subprocess.STDOUT,
                             preexec_fn=lambda: os.umask(0))
        self.procs.add(name, p)
        try:
            wait_ready(ready, 'submilter ' + name, p)
        except RuntimeError as e:
            raise RuntimeError('%s; log: %s' % (e, tail(logf, 5)))
        return p.pid

    def setup_submilter_smtp(self):
        if not os.access(self.o.submilter, os.X_OK):
            for s in ('subm-pass', 'subm-rsa', 'subm-ed25519'):
                self.skipped[s] = 'no submilter binary at ' + self.o.submilter
            return
        for s, alg in (('subm-pass', None), ('subm-rsa', 'rsa'),
                       ('subm-ed25519', 'ed25519')):
            try:
                chain = ''
                if alg:
                    if not self.plugin_have('dkim'):
                        raise RuntimeError('the dkim plugin is not built')
                    chain = self.dkim_chain(alg, True)
                conf, spool = self.subm_conf(s, smtp_port=PORT_SUBM[s], chain=chain)
                if not port_free(PORT_SUBM[s]):
                    raise RuntimeError('port %d is taken' % PORT_SUBM[s])
                pid = self.start_submilter(s, conf, port_open(PORT_SUBM[s]), spool)
                self.pids[s] = [('submilter', pid, False)]
            except (RuntimeError, OSError) as e:
                self.skipped[s] = str(e)

    def setup_milters(self):
        """the milters behind Postfix: submilter (empty, dkim) and opendkim."""
        socks = {}
        if os.access(self.o.submilter, os.X_OK):
            for s, alg in (('pf-subm-empty', None), ('pf-subm-rsa', 'rsa')):
                try:
                    sock = os.path.join(self.rd, s + '.sock')
                    chain = ''
                    if alg:
                        if not self.plugin_have('dkim'):
                            raise RuntimeError('the dkim plugin is not built')
                        chain = self.dkim_chain(alg, False)
                    conf, spool = self.subm_conf(s, milter_sock=sock, chain=chain)
                    pid = self.start_submilter(s, conf, lambda sock=sock: os.path.exists(sock),
                                               spool)
                    self.pids[s] = [('submilter milter', pid, False)]
                    socks[s] = sock
                except (RuntimeError, OSError) as e:
                    self.skipped[s] = str(e)
        else:
            for s in ('pf-subm-empty', 'pf-subm-rsa'):
                self.skipped[s] = 'no submilter binary'
        try:
            socks['pf-opendkim'] = self.start_opendkim()
        except (RuntimeError, OSError) as e:
            self.skipped['pf-opendkim'] = str(e)
        try:
            sock = os.path.join(self.rd, 'null.sock')
            p = subprocess.Popen([sys.executable, os.path.join(self.o.benchdir, 'nullmilter.py'),
                                  'unix:' + sock], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(self.rd, 'null.log'), 'a'))
            self.procs.add('null milter', p)
            wait_ready(lambda: os.path.exists(sock), 'null milter', p)
            self.pids['pf-null'] = [('null milter', p.pid, False)]
            socks['pf-null'] = sock
        except (RuntimeError, OSError) as e:
            self.skipped['pf-null'] = str(e)
        return socks

    # -- opendkim
    def start_opendkim(self):
        od = os.path.join(self.rd, 'opendkim')   # opendkim makes its socket as its user
        os.makedirs(od, exist_ok=True)
        shutil.chown(od, 'opendkim', 'opendkim')
        os.chmod(od, 0o755)
        sock = os.path.join(od, 'opendkim.sock')
        conf = os.path.join(self.rd, 'opendkim.conf')
        key = os.path.join(self.rd, 'keys', 'opendkim-rsa.private')
        shutil.copy(self.keys['rsa'], key)
        shutil.chown(key, 'opendkim', 'opendkim')
        os.chmod(key, 0o600)
        with open(conf, 'w') as f:
            f.write('\n'.join([
                'Syslog no', 'Mode s', 'Domain %s' % DOMAIN,
                'Selector %s' % SELECTOR['rsa'], 'KeyFile %s' % key,
                'Canonicalization relaxed/relaxed', 'SignatureAlgorithm rsa-sha256',
                'Socket local:%s' % sock, 'UMask 000', 'UserID opendkim',
                'PidFile %s' % os.path.join(od, 'opendkim.pid'),
                'InternalHosts 127.0.0.0/8', 'BaseDirectory %s' % self.rd,
                'RequireSafeKeys false', '']))
        logf = os.path.join(self.rd, 'opendkim.log')
        p = subprocess.Popen(['opendkim', '-f', '-x', conf], stdout=open(logf, 'a'),
                             stderr=subprocess.STDOUT)
        self.procs.add('opendkim', p)
        wait_ready(lambda: os.path.exists(sock), 'opendkim', p)
        self.pids['pf-opendkim'] = [('opendkim', p.pid, False)]
        return sock

    # -- Postfix
    def start_postfix(self, socks):
        d = os.path.join(self.rd, 'postfix')
        for sub in ('etc', 'spool', 'data'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        shutil.chown(os.path.join(d, 'data'), 'postfix')
        main = """compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = bench.example.com
mydomain = example.com
myorigin = example.com
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{sink}
smtp_dns_support_level = disabled
disable_dns_lookups = yes
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
biff = no
default_process_limit = 300
smtpd_client_connection_count_limit = 0
in_flow_delay = 0
milter_default_action = tempfail
milter_protocol = 6
""".format(d=d, sink=PORT_SINK)
        master = ['pickup    unix  n - n 60 1 pickup',
                  'cleanup   unix  n - n - 0 cleanup',
                  'qmgr      unix  n - n 300 1 qmgr',
                  'rewrite   unix  - - n - - trivial-rewrite',
                  'bounce    unix  - - n - 0 bounce',
                  'defer     unix  - - n - 0 bounce',
                  'trace     unix  - - n - 0 bounce',
                  'verify    unix  - - n - 1 verify',
                  'flush     unix  n - n 1000? 0 flush',
                  'proxymap  unix  - - n - - proxymap',
                  'smtp      unix  - - n - - smtp',
                  'relay     unix  - - n - - smtp',
                  'showq     unix  n - n - - showq',
                  'error     unix  - - n - - error',
                  'retry     unix  - - n - - error',
                  'discard   unix  - - n - - discard',
                  'anvil     unix  - - n - 1 anvil',
                  'scache    unix  - - n - 1 scache',
                  'postlog   unix-dgram n - n - 1 postlogd']
        for s, port in PORT_PF.items():
            if s == 'pf':
                master.append('%d inet n - n - - smtpd' % port)
            elif s in socks:
                master.append('%d inet n - n - - smtpd -o smtpd_milters=unix:%s'
                              % (port, socks[s]))
            else:
                self.skipped.setdefault(s, 'its milter did not start')
        with open(os.path.join(d, 'etc', 'main.cf'), 'w') as f:
            f.write(main)
        with open(os.path.join(d, 'etc', 'master.cf'), 'w') as f:
            f.write('\n'.join(master) + '\n')
        for port in PORT_PF.values():
            if not port_free(port):
                raise RuntimeError('port %d is taken' % port)
        etc = os.path.join(d, 'etc')
        r = subprocess.run(['postfix', '-c', etc, 'start'], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError('postfix start failed: %s %s' % (r.stderr, tail(d + '/maillog', 5)))
        pidf = os.path.join(d, 'spool', 'pid', 'master.pid')
        wait_ready(lambda: os.path.exists(pidf), 'postfix master')
        with open(pidf) as f:
            master_pid = int(f.read().strip())

        def stop():
            subprocess.run(['postfix', '-c', etc, 'stop'], capture_output=True)
            for _ in range(100):
                if not pid_alive(master_pid):
                    return
                time.sleep(0.1)
            os.kill(master_pid, signal.SIGKILL)
        self.procs.add('postfix', pid=master_pid, stop=stop)
        wait_ready(port_open(PORT_PF['pf']), 'postfix smtpd')
        self.pf_dir = d
        for s in PORT_PF:
            if s in self.skipped:
                continue
            self.pids[s] = [('postfix', master_pid, True)] + self.pids.get(s, [])

    def postfix_queue(self):
        n = 0
        for q in ('maildrop', 'incoming', 'active', 'deferred', 'hold'):
            for _, _, files in os.walk(os.path.join(self.pf_dir, 'spool', q)):
                n += len(files)
        return n

    def postfix_drain(self, limit=120):
        end = time.time() + limit
        while time.time() < end:
            if self.postfix_queue() == 0:
                return True
            time.sleep(0.2)
        return False

    # -- Haraka
    def setup_haraka(self, port_for=PORT_HARAKA):
        if not self.o.haraka:
            for s in port_for:
                self.skipped[s] = 'Haraka not installed (t/bench/work/haraka)'
            return
        for s, port in port_for.items():
            try:
                self.pids[s] = [('haraka', self.start_haraka(s, port, s == 'haraka-dkim'),
                                 False)]
            except (RuntimeError, OSError) as e:
                self.skipped[s] = str(e)

    def start_haraka(self, name, port, dkim):
        hd = os.path.join(self.rd, name)
        cd = os.path.join(hd, 'config')
        harakabin = os.path.join(self.o.haraka, 'node_modules', 'Haraka', 'bin', 'haraka')
        subprocess.run(['node', harakabin, '-i', hd], capture_output=True, check=True,
                       cwd=self.o.haraka)
        files = {
            'smtp.ini': 'listen=127.0.0.1:%d\nnodes=0\n' % port,
            'me': 'bench.example.com\n',
            'host_list': 'example.net\n',
            'log.ini': '[main]\nlevel=info\ntimestamps=false\n',
            'smtp_forward.ini': '[main]\nhost=127.0.0.1\nport=%d\nenable_outbound=true\n'
                                % PORT_SINK,
        }
        if dkim:
            files['plugins'] = 'relay\nheaders\ndkim\nqueue/smtp_forward\n'
            files['relay.ini'] = '[relay]\nacl=true\nforce_routing=false\ndest_domains=false\n'
            files['relay_acl_allow'] = '127.0.0.0/8\n'
            files['dkim.ini'] = ('[main]\n\n[sign]\nenabled=true\nselector=%s\ndomain=%s\n'
                                 'headers=From, Sender, Reply-To, Subject, Date, Message-ID, '
                                 'To, Cc, MIME-Version, Content-Type\n\n[canon]\n'
                                 'body=relaxed\n\n[verify]\nenabled=true\n'
                                 % (SELECTOR['rsa'], DOMAIN))
            kd = os.path.join(cd, 'dkim', DOMAIN)
            os.makedirs(kd, exist_ok=True)
            shutil.copy(self.keys['rsa'], os.path.join(kd, 'private'))
            with open(os.path.join(kd, 'selector'), 'w') as f:
                f.write(SELECTOR['rsa'] + '\n')
        else:
            files['plugins'] = 'rcpt_to.in_host_list\nqueue/smtp_forward\n'
        for fn, text in files.items():
            with open(os.path.join(cd, fn), 'w') as f:
                f.write(text)
        if not port_free(port):
            raise RuntimeError('port %d is taken' % port)
        logf = os.path.join(self.rd, name + '.log')
        env = dict(os.environ, NODE_PATH=os.path.join(self.o.haraka, 'node_modules'))
        p = subprocess.Popen(['node', harakabin, '-c', hd],
                             stdout=open(logf, 'a'), stderr=subprocess.STDOUT, env=env,
                             cwd=self.o.haraka)
        self.procs.add(name, p)
        try:
            wait_ready(port_open(port), 'haraka ' + name, p, timeout=30)
        except RuntimeError as e:
            raise RuntimeError('%s; log: %s' % (e, tail(logf, 5)))
        return p.pid

    # -- servers of a phase
    def start_all(self, dump_dir=None):
        self.skipped = {}
        self.pids = {}
        self.start_sink(dump_dir)
        self.setup_submilter_smtp()
        self.setup_haraka()
        socks = self.setup_milters()
        try:
            self.start_postfix(socks)
        except (RuntimeError, OSError) as e:
            for s in PORT_PF:
                self.skipped[s] = str(e)

    def port_of(self, s):
        if s == 'direct':
            return PORT_SINK
        for table in (PORT_SUBM, PORT_HARAKA, PORT_PF):
            if s in table:
                return table[s]
        raise KeyError(s)

    def wanted(self, s):
        return not self.o.only or s in self.o.only

    # ------------------------------------------------------------ phase 1
    def send_one(self, port, path, timeout=120):
        """send_one - one message over SMTP with smtplib; the reply or error."""
        import smtplib
        with open(path, 'rb') as f:
            data = f.read().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
        try:
            with smtplib.SMTP('127.0.0.1', port, 'bench.example.com', timeout=timeout) as c:
                c.sendmail(MAIL_FROM, [RCPT_TO], data)
            return None
        except (smtplib.SMTPException, OSError) as e:
            return str(e)

    @staticmethod
    def dumped_message(path):
        """the message part of an smtp-sink dump file (CRLF lines)."""
        with open(path, 'rb') as f:
            raw = f.read()
        i = raw.find(b'\nReceived: ')
        if i < 0:
            return None
        # the Received header smtp-sink adds is three lines long
        j = i + 1
        for _ in range(3):
            j = raw.index(b'\n', j) + 1
        msg = raw[j:]
        if msg.endswith(b'\n\n'):
            msg = msg[:-1]
        return msg.replace(b'\n', b'\r\n')

    def wait_dump(self, dump, before, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            now = set(os.listdir(dump)) - before
            done = [f for f in now if os.path.getsize(os.path.join(dump, f)) > 0]
            if done:
                time.sleep(0.3)     # smtp-sink closes the file at the dot
                return os.path.join(dump, sorted(done)[0])
            time.sleep(0.1)
        return None

    def check_scenarios(self, dump):
        import dkim
        with open(self.msgfile, 'rb') as f:
            orig = f.read().replace(b'\n', b'\r\n')
        for s, label, _ in SCENARIOS:
            if s in self.skipped or not self.wanted(s):
                continue
            before = set(os.listdir(dump))
            err = self.send_one(self.port_of(s), self.msgfile)
            if err:
                self.checks.append((label, 'send failed: %s' % err, False))
                log('check', s, 'send failed:', err)
                self.check_failed.add(s)
                continue
            got = self.wait_dump(dump, before)
            if got is None:
                self.checks.append((label, 'accepted but never reached the sink', False))
                log('check', s, 'accepted but never reached the sink')
                self.check_failed.add(s)
                continue
            msg = self.dumped_message(got)
            signs = 'dkim' in s or 'rsa' in s or 'ed25519' in s
            verdict, ok = [], True
            if not same_body(msg, orig):
                verdict.append('body changed')
                ok = False
            else:
                verdict.append('body intact')
            nsig = msg.lower().count(b'\r\ndkim-signature:') + msg.lower().startswith(
                b'dkim-signature:') if msg else 0
            if signs:
                try:
                    good = dkim.verify(msg, dnsfunc=lambda n, timeout=5: self.dns.get(
                        n if isinstance(n, str) else n.decode(), b''))
                except Exception as e:     # dkimpy raises on malformed signatures
                    good = False
                    verdict.append('dkimpy: %s' % e)
                verdict.append('%d DKIM-Signature, dkimpy %s' % (
                    nsig, 'pass' if good else 'FAIL'))
                ok = ok and good
            elif nsig:
                verdict.append('unexpected DKIM-Signature')
            self.checks.append((label, ', '.join(verdict), ok))
            log('check', s, ', '.join(verdict))
            if not ok:
                self.check_failed.add(s)

    def big_message(self, dump):
        s = 'subm-pass'
        if s in self.skipped:
            self.memory.append(('50 MB message through submilter', 'not run: ' + self.skipped[s]))
            return
        pid = self.pids[s][0][1]
        spool = os.path.join(self.rd, 'spool-' + s)
        big = os.path.join(self.rd, 'msg50m.eml')
        self.make_message(big, 50 * 1000 * 1000)
        before = set(os.listdir(dump))
        rss0 = status_kib(pid, 'VmRSS')
        reset_hwm(pid)
        t0 = time.monotonic()
        err = self.send_one(PORT_SUBM[s], big, timeout=600)
        secs = time.monotonic() - t0
        hwm = status_kib(pid, 'VmHWM')
        if err:
            self.memory.append(('50 MB message through submilter', 'refused: ' + err))
            return
        got = self.wait_dump(dump, before, timeout=120)
        intact = False
        if got:
            time.sleep(1)
            msg = self.dumped_message(got)
            with open(big, 'rb') as f:
                orig = f.read().replace(b'\n', b'\r\n')
            intact = same_body(msg, orig)
        left = os.listdir(spool)
        held = []
        for fd in glob.glob('/proc/%d/fd/*' % pid):
            try:
                t = os.readlink(fd)
            except OSError:
                continue
            if t.startswith(spool):
                held.append(t)
        self.memory.append((
            '50 MB message through submilter (smtp, empty chain)',
            'RSS growth %.2f MiB (VmHWM %.1f MiB - VmRSS before %.1f MiB); %.1f s; '
            'arrived %s; spool folder %s%s' % (
                (hwm - rss0) / 1024.0, hwm / 1024.0, rss0 / 1024.0, secs,
                'intact' if intact else 'NOT intact' if got else 'NEVER',
                'empty' if not left else 'holds %d files' % len(left),
                ', files still open: %d' % len(held) if held else '')))
        self.big_growth = (hwm - rss0) / 1024.0
        os.unlink(big)
        for f in set(os.listdir(dump)) - before:
            os.unlink(os.path.join(dump, f))

    def idle(self, label, port, pid, tree_pid=False, n=1000):
        r = subprocess.run([sys.executable, os.path.join(self.o.benchdir, 'idle.py'),
                            '-n', str(n), '-p', str(port), '--pid', str(pid)],
                           capture_output=True, text=True, timeout=300)
        out = r.stdout.strip().splitlines()
        text = out[-1] if out else r.stderr.strip()[-300:]
        self.memory.append(('%d idle sessions: %s' % (n, label), text))
        m = re.search(r'per_session_kib=([0-9.]+)', text)
        return float(m.group(1)) if m else None

    def phase_checks(self):
        dump = os.path.join(self.rd, 'dump')
        log('phase 1: checks and memory (dumping sink)')
        self.start_all(dump_dir=dump)
        try:
            self.check_scenarios(dump)
            if self.wanted('memory'):
                self.big_message(dump)
                if 'subm-pass' not in self.skipped:
                    self.idle_kib = self.idle('submilter smtp front-end', PORT_SUBM['subm-pass'],
                                              self.pids['subm-pass'][0][1])
                if 'haraka-bare' not in self.skipped:
                    self.idle('Haraka (reference)', PORT_HARAKA['haraka-bare'],
                              self.pids['haraka-bare'][0][1])
        finally:
            self.procs.stop_all()
            shutil.rmtree(dump, ignore_errors=True)

    # ------------------------------------------------------------ phase 2
    def phase_points(self):
        log('phase 2: throughput (discarding sink)')
        self.start_all()
        load = Load(self.o, self.msgfile)
        rounds = max(1, self.o.repeat)
        try:
            for sessions, per_conn in self.o.points:
                for group in GROUPS:
                    fast = group[0] in ('direct', 'subm-rsa')
                    # fast: every round is a full point; slow: the rounds share
                    # the point's count and time
                    n = rounds if fast and group[0] == 'direct' else 1 if fast else rounds
                    count = self.o.count if fast else -(-self.o.count // n)
                    cap = self.o.cap_fast if fast else self.o.cap / n
                    self.measure_group(load, group, sessions, per_conn, n, count, cap)
            for s in self.o.profile:
                if s in self.skipped or not self.wanted(s):
                    continue
                self.profile(s, load)
        finally:
            self.procs.stop_all()

    def measure(self, load, s, sessions, per_conn, count, cap):
        """measure - one run of one scenario: load, drain, memory, CPU."""
        smp = Sampler(self.pids.get(s, []))
        smp.start()
        r = load.point(self.port_of(s), sessions, per_conn, count, cap)
        if s.startswith('pf'):
            if not self.postfix_drain():
                r['err'] = (r['err'] or '') + ' queue not drained in 120 s'
        peak, nproc = smp.finish()
        r['rss'] = [(lab, peak[lab], nproc[lab]) for lab, _, _ in self.pids.get(s, [])]
        r['cpu'] = smp.cpu_used
        r['cpu_each'] = smp.cpu_each
        r['client'] = smp.client_used
        log('%-14s %3dx%-2d %6d msgs %6.1f s %8.1f msg/s p50 %s p99 %s cpu %s/%s us %s%s' % (
            s, sessions, per_conn, r['msgs'], r['secs'], r['rate'],
            fmt_ms(r['p50']), fmt_ms(r['p99']),
            fmt_us(r['cpu'] / r['msgs'] * 1e6 if r['msgs'] else None),
            fmt_us(r['client'] / r['msgs'] * 1e6 if r['msgs'] else None), fmt_rss(r['rss']),
            ' ERR ' + r['err'] if r['err'] else ''))
        return r

    def measure_group(self, load, group, sessions, per_conn, rounds, count, cap):
        """measure_group - the scenarios of a group in turn, rounds times: the
        machine is shared, so scenarios compared with each other run seconds
        apart, and their ratio is the median of the per-round ratios."""
        runs = {s: [] for s in group if self.wanted(s) and s not in self.skipped}
        for _ in range(rounds):
            for s in runs:
                runs[s].append(self.measure(load, s, sessions, per_conn, count, cap))
        for s, rs in runs.items():
            self.rows[(s, sessions, per_conn)] = combine(rs)

    def profile(self, s, load, sessions=20, per_conn=1, secs=4):
        """profile - perf record -a while scenario s runs at 20x1; keeps the
        share of CPU per program and the server's hottest symbols."""
        if shutil.which('perf') is None:
            self.profiles.append((s, 'perf not installed'))
            return
        data = os.path.join(self.rd, 'perf-%s.data' % s)
        rec = subprocess.Popen(['perf', 'record', '-a', '-g', '-F', '499', '-o', data,
                                '--', 'sleep', str(secs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        r = load.point(self.port_of(s), sessions, per_conn, 1000000, secs - 0.6)
        rec.wait()
        if s.startswith('pf'):
            self.postfix_drain()
        comm = 'submilter' if 'subm' in s else 'opendkim' if 'opendkim' in s else \
            'node' if 'haraka' in s else 'smtpd'

        def report(*args):
            out = sh(['perf', 'report', '-i', data, '--stdio', '--no-children'] + list(args))
            return [l.rstrip() for l in out.splitlines()
                    if re.match(r'^\s+[0-9.]+%', l)]
        by_comm = report('--sort', 'comm', '-g', 'none')[:8]
        by_dso = [l for l in report('--sort', 'comm,dso', '-g', 'none')
                  if l.split()[1:2] == [comm]][:6]
        by_sym = report('--comm', comm, '--sort', 'dso,symbol', '-g', 'none')[:25]
        text = ['%s at %dx%d, %.0f msg/s while profiled (perf record -a -g, %d s)'
                % (s, sessions, per_conn, r['rate'], secs),
                'CPU samples by program:'] + by_comm + \
            ['%s by library (share of all samples):' % comm] + by_dso + ['%s hottest symbols (self):' % comm] + by_sym
        self.profiles.append((s, '\n'.join(text)))
        log('profiled', s)


def same_body(msg, orig):
    """same_body - whether msg ends with orig's body (blank lines at the end
    aside: smtp-sink's dump adds one)."""
    if msg is None:
        return False
    body = orig[orig.index(b'\r\n\r\n'):].rstrip(b'\r\n')
    return msg.rstrip(b'\r\n').endswith(body)


def combine(rs):
    """combine - the runs of one scenario at one point as one row: messages
    and seconds added up, latencies pooled, the largest RSS, CPU per message
    over all; round_rates keeps each run's msg/s for paired ratios."""
    msgs = sum(r['msgs'] for r in rs)
    secs = sum(r['secs'] for r in rs)
    lats = sorted(x for r in rs for x in r['lats'])
    rss = []
    for i, (lab, _, _) in enumerate(rs[0]['rss']):
        rss.append((lab, max(r['rss'][i][1] for r in rs), max(r['rss'][i][2] for r in rs)))
    errs = [r['err'] for r in rs if r['err']]
    return {'msgs': msgs, 'secs': secs, 'rate': msgs / secs if secs > 0 else 0.0,
            'p50': percentile(lats, 0.50), 'p99': percentile(lats, 0.99), 'rss': rss,
            'cpu_us': sum(r['cpu'] for r in rs) / msgs * 1e6 if msgs else None,
            'cpu_each_us': {k: sum(r['cpu_each'].get(k, 0) for r in rs) / msgs * 1e6
                            for k in rs[0]['cpu_each']} if msgs else {},
            'client_us': sum(r['client'] for r in rs) / msgs * 1e6 if msgs else None,
            'round_rates': [r['rate'] for r in rs], 'err': '; '.join(errs) if errs else None}


def same_group(a, b):
    return any(a in g and b in g for g in GROUPS)


def ratio_of(a, b, paired):
    """ratio_of - a's msg/s over b's: the median of per-round ratios when
    both ran the same rounds side by side (paired), else of the totals."""
    ra, rb = a.get('round_rates', []), b.get('round_rates', [])
    if paired and len(ra) > 1 and len(ra) == len(rb) and all(x > 0 for x in rb):
        each = sorted(x / y for x, y in zip(ra, rb))
        return each[len(each) // 2], [x / y for x, y in zip(ra, rb)]
    if b['rate'] > 0:
        return a['rate'] / b['rate'], []
    return None, []


def fmt_ms(us):
    if us is None:
        return '-'
    return '%.2f' % (us / 1000.0) if us < 100000 else '%.0f' % (us / 1000.0)


def fmt_cpu(r):
    """server CPU per message, split by process when there are several."""
    each = r.get('cpu_each_us') or {}
    if len(each) > 1:
        return '%s (%s)' % (fmt_us(r['cpu_us']), ' + '.join(
            '%s %s' % (k, fmt_us(v)) for k, v in each.items()))
    return fmt_us(r['cpu_us'])


def fmt_us(us):
    return '-' if us is None else '%.0f' % us


def fmt_rss(rss):
    out = []
    for lab, kib, n in rss:
        out.append('%s %.1f' % (lab, kib / 1024.0) + (' (%d procs)' % n if n > 1 else ''))
    return ' + '.join(out)


# ------------------------------------------------------------------ report

def sh(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return 'unavailable'


def machine(o):
    mem = ''
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal'):
                mem = '%.1f GiB' % (int(line.split()[1]) / 1048576.0)
    cpu = ''
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    haraka = 'not installed'
    if o.haraka:
        try:
            import json
            with open(os.path.join(o.haraka, 'node_modules', 'Haraka', 'package.json')) as f:
                haraka = json.load(f)['version']
        except (OSError, ValueError, KeyError):
            haraka = 'unknown'
    dpkg = sh(['dpkg-query', '-W', '-f', '${Package} ${Version}\n', 'postfix', 'opendkim',
               'libopendkim11', 'libmilter1.0.1', 'openssl'])
    subv = sh([o.submilter, '-V']) if os.access(o.submilter, os.X_OK) else 'not built'
    return [
        ('nproc', str(os.cpu_count())), ('CPU', cpu), ('memory', mem),
        ('kernel', platform.release()),
        ('submilter -V', subv.replace('\n', '; ')),
        ('Debian packages', dpkg.replace('\n', '; ')),
        ('node', sh(['node', '--version'])), ('Haraka', haraka),
        ('python (helpers)', platform.python_version()),
    ]


def write_results(b, o, started, elapsed):
    rows = b.rows
    lines = []
    day = time.strftime('%Y-%m-%d', time.gmtime(started))
    lines.append('# submilter benchmark, %s' % day)
    lines.append('')
    lines.append('Run by `make bench` (t/bench/run) from %s to %s UTC, %.1f minutes. '
                 'Everything on loopback%s.' % (
                     time.strftime('%H:%M', time.gmtime(started)),
                     time.strftime('%H:%M', time.gmtime(started + elapsed)), elapsed / 60.0,
                     ' in a private network namespace' if o.netns else ''))
    lines.append('')
    lines.append('| machine | |')
    lines.append('|---|---|')
    for k, v in machine(o):
        lines.append('| %s | %s |' % (k, v.replace('|', '/')))
    lines.append('')
    lines.append('## Summary: msg/s (sessions x messages per connection)')
    lines.append('')
    lines.append('| scenario | ' + ' | '.join('%d x %d' % p for p in o.points) + ' |')
    lines.append('|---|' + '---:|' * len(o.points))
    for s, label, _ in SCENARIOS:
        cells = []
        for p in o.points:
            r = rows.get((s,) + p)
            cells.append('%.0f' % r['rate'] if r else '-')
        if any(c != '-' for c in cells):
            lines.append('| %s | %s |' % (label, ' | '.join(cells)))
    lines.append('')
    lines.append('## Throughput, latency, memory')
    lines.append('')
    lines.append('Messages of 4,096 bytes (header and body). Ratio: msg/s over the reference '
                 'scenario\'s msg/s at the same point of the same run (direct, or Postfix '
                 'without milter for the milter rows). Peak RSS in MiB: VmHWM of the server '
                 'process, or for Postfix the peak of the summed PSS of all its processes '
                 '(+ the milter\'s own VmHWM).')
    lines.append('')
    lines.append('| scenario | sessions x msgs/conn | messages | msg/s | p50 ms | p99 ms '
                 '| peak RSS MiB | server CPU us/msg | client CPU us/msg | ratio |')
    lines.append('|---|---:|---:|---:|---:|---:|---|---:|---:|---:|')
    for sessions, per_conn in o.points:
        for s, label, ref in SCENARIOS:
            r = rows.get((s, sessions, per_conn))
            if r is None:
                continue
            ratio = ''
            flag = ' (**check failed**)' if s in b.check_failed else ''
            rr = rows.get((ref, sessions, per_conn)) if ref else None
            if rr:
                med, each = ratio_of(r, rr, same_group(s, ref))
                if med is not None:
                    ratio = '%.2fx %s' % (med, 'Postfix' if ref == 'pf' else ref)
                    if len(each) > 1:
                        ratio += ' (%s)' % ' '.join('%.2f' % x for x in each)
            rss = ' + '.join('%s %.1f%s' % (lab, kib / 1024.0,
                                             ' (%d procs)' % n if n > 1 else '')
                             for lab, kib, n in r['rss'])
            lines.append('| %s%s%s | %d x %d | %d | %.0f | %s | %s | %s | %s | %s | %s |' % (
                label, flag, ' (**error**: %s)' % r['err'] if r['err'] else '', sessions,
                per_conn, r['msgs'], r['rate'], fmt_ms(r['p50']), fmt_ms(r['p99']), rss,
                fmt_cpu(r), fmt_us(r['client_us']), ratio))
    lines.append('')
    not_run = {}
    for s, label, _ in SCENARIOS:
        why = b.skipped.get(s) or b.first_skip.get(s)
        if why and not any(k[0] == s for k in rows):
            not_run[label] = why
    if not_run:
        lines.append('Not run:')
        for label, why in not_run.items():
            lines.append('- %s: %s' % (label, why))
        lines.append('')
    lines.append('## Targets (issue 6)')
    lines.append('')
    lines += targets(b, o)
    lines.append('')
    lines.append('## Checks (one message through each scenario, to a dumping smtp-sink)')
    lines.append('')
    for what, res, ok in b.checks:
        lines.append('- %s: %s%s' % (what, res, '' if ok else ' **(failed)**'))
    lines.append('')
    lines.append('## Memory')
    lines.append('')
    for what, res in b.memory:
        lines.append('- %s: %s' % (what, res))
    lines.append('')
    if b.profiles:
        lines.append('## Profiles')
        lines.append('')
        for what, text in b.profiles:
            lines.append('```')
            lines += text.split('\n')
            lines.append('```')
            lines.append('')
    lines.append('## Method')
    lines.append('')
    lines += METHOD.format(count=o.count, cap=o.cap, cap_fast=o.cap_fast, repeat=o.repeat,
                           cap_third='%g' % (o.cap / max(1, o.repeat))).strip().split('\n')
    for n in b.notes:
        lines.append('- ' + n)
    lines.append('')
    text = '\n'.join(lines)
    os.makedirs(os.path.dirname(o.out), exist_ok=True)
    with open(o.out, 'w') as f:
        f.write(text)
    return text


METHOD = """
- Load: Postfix's `smtp-source` for 1 message per connection; `t/bench/drive` (the bench's own
  C client, one thread per session, no pipelining, like smtp-source) for 10 messages per
  connection, which smtp-source cannot express (`-d` keeps one connection for the whole run).
  The sink is Postfix's `smtp-sink` (discarding; in the checks phase, dumping to files).
- Latency per message: from `connect()` for the first message of a connection (banner and EHLO
  included) or from `MAIL FROM` for later ones, to the first byte of the reply to the final dot.
  Taken inside smtp-source by `t/bench/lat.so` (LD_PRELOAD on connect/write/read/close) and by
  drive's own clock.
- Other work on this machine moves absolute figures by up to 2x within minutes, so scenarios
  compared with each other run in turn, round by round, at each point: direct and pass-through
  {repeat} rounds of {count:,} messages each; Haraka bare/DKIM and the five Postfix rows
  {repeat} rounds sharing the point's count and time cap. A row adds its rounds up (messages,
  seconds, pooled latencies, largest RSS); where both sides ran the same rounds, the ratio is the
  median of the per-round ratios (each listed in brackets). The submilter DKIM rows run once.
- Messages per point: at least {count:,} for direct and submilter's smtp rows (unless a run
  passes {cap_fast} s). **Reduced** for the slow references: a Haraka or Postfix point stops
  after {cap} s in all ({repeat} x {cap_third} s), because at their rates 20,000 messages
  would take 1-17 minutes a point (Haraka, ~20 msg/s with one session: 17 minutes) and the
  whole bench must stay under 20 minutes. The messages column says how many each row got.
  Load runs in chunks sized from the rate seen so far (the first is one connection per session).
- Postfix: one private instance (own config, queue, ports; DNS and peer-name lookups off) with one
  smtpd listener per scenario, relaying to the sink; msg/s counts what smtpd accepted; after each
  point the bench waits until the queue is empty, outside the timing. `in_flow_delay = 0`: with
  Postfix's default (1 s), smtpd pauses up to a second per message whenever arrivals outrun
  deliveries to the sink, which at 100 sessions made p99 ~1 s and swung the milter ratios
  between 0.5x and 1.9x from one repetition to the next.
- submilter runs with `-f` (its log line per message goes to a file; there is no syslogd).
  The default chain is conf/submilter.conf's plugin blocks (vrfy, size, spf, regex, dkim with
  verify) with the bench's signing table added to the dkim block; spf skips loopback clients.
  The milter DKIM rows use a chain of only `dkim` signing, as OpenDKIM does here.
- The null milter (`t/bench/nullmilter.py`, the protocol in a few lines of Python) asks Postfix
  to skip every stage but CONNECT and answers that with accept, after which Postfix sends it
  nothing more for the connection: what Postfix loses with it is what any milter costs Postfix
  here (a connection, a negotiation and a CONNECT per SMTP session), the floor for the
  empty-chain target. submilter's milter front-end does the same with an empty chain.
- OpenDKIM and submilter's milter front-end listen on unix sockets; OpenDKIM signs (Mode s)
  rsa-sha256 relaxed/relaxed with the same key. Haraka 3 runs as one process (nodes unset: its
  default; two cluster workers were slower on 2 cores) at log level info, with `smtp_forward`
  to the sink: bare = `rcpt_to.in_host_list` (needed to accept a recipient) + `smtp_forward`;
  equivalent chain = `relay` (ACL 127.0.0.0/8), `headers` (its default checks), `dkim` (sign
  rsa-2048 relaxed, verify on) + `smtp_forward` (outbound). It has no VRFY/regex equivalents.
- Peak RSS: /proc/PID/status VmHWM after `clear_refs` = 5 at the start of each point; for Postfix
  the largest sum of PSS (smaps_rollup: shared pages split between the processes mapping them)
  over master and all its children in 100 ms samples.
- CPU per message: utime+stime from /proc/PID/stat over the point, divided by the messages
  (server: the process, or Postfix's whole tree incl. children it reaped, plus the milter,
  split in brackets; client: smtp-source or drive, from getrusage of reaped children). For
  Postfix it includes delivering the queue to the sink.
- Profiles: `perf record -a -g` for 4 s while the scenario runs at 20 x 1 (not in the table).
- Idle sessions: `t/bench/idle.py` opens the sessions, reads the banner, says EHLO and waits;
  RSS per session = (VmRSS with the sessions open - VmRSS before) / sessions.
"""


def target_line(name, vals, limit, aim=None, higher=True, unit='x', judge=True):
    """one target: the measured values, met or missed (judge=False: a line
    of context under the target above, values only)."""
    got = [(k, v) for k, v in vals if v is not None]
    bullet = '- ' if judge else '  - '
    if not got:
        return '%s%s: not measured' % (bullet, name)
    parts = ', '.join('%s %s' % (k, ('%.2f%s' % (v, unit))) for k, v in got)
    if not judge:
        return '%s%s: %s' % (bullet, name, parts)
    worst = min(v for _, v in got) if higher else max(v for _, v in got)
    ok = worst >= limit if higher else worst <= limit
    return '%s%s: %s -> **%s**%s' % (bullet, name, parts, 'met' if ok else 'MISSED',
                                     (' (aim %.1f%s)' % (aim, unit)) if aim else '')


def targets(b, o):
    rows = b.rows

    def ratio(a, ref, s, m):
        ra, rb = rows.get((a, s, m)), rows.get((ref, s, m))
        if ra and rb and not ra['err']:
            return ratio_of(ra, rb, same_group(a, ref))[0]
        return None

    def pts(sel):
        return [(s, m) for s, m in o.points if sel(s, m)]
    out = []
    many = pts(lambda s, m: s >= 20)
    out.append(target_line('Pass-through vs direct, 20 and 100 sessions (>= 0.6x)',
                           [('%dx%d' % p, ratio('subm-pass', 'direct', *p)) for p in many],
                           0.6, 0.8))
    out.append(target_line('Pass-through vs Haraka pass-through, 20 and 100 sessions (>= 5x)',
                           [('%dx%d' % p, ratio('subm-pass', 'haraka-bare', *p)) for p in many],
                           5.0))
    out.append(target_line('Default chain + DKIM rsa-2048 vs Haraka + DKIM (>= 5x)',
                           [('%dx%d' % p, ratio('subm-rsa', 'haraka-dkim', *p))
                            for p in o.points], 5.0))
    out.append(target_line('Milter, empty chain vs Postfix without milter (>= 0.9x)',
                           [('%dx%d' % p, ratio('pf-subm-empty', 'pf', *p)) for p in o.points],
                           0.9))
    out.append(target_line('context: a null milter (accepts at CONNECT) vs Postfix without '
                           'milter, the floor any milter pays here',
                           [('%dx%d' % p, ratio('pf-null', 'pf', *p)) for p in o.points],
                           0, judge=False))
    out.append(target_line('context: submilter empty chain vs the null milter',
                           [('%dx%d' % p, ratio('pf-subm-empty', 'pf-null', *p))
                            for p in o.points], 0, judge=False))
    out.append(target_line('Milter DKIM rsa-2048 vs OpenDKIM under the same Postfix (>= 1x)',
                           [('%dx%d' % p, ratio('pf-subm-rsa', 'pf-opendkim', *p))
                            for p in o.points], 1.0))
    lat = []
    for p in pts(lambda s, m: s == 1):
        ra, rb = rows.get(('subm-pass',) + p), rows.get(('direct',) + p)
        if ra and rb and ra['p50'] is not None and rb['p50'] is not None:
            lat.append(('%dx%d' % p, (ra['p50'] - rb['p50']) / 1000.0))
    out.append(target_line('Added p50 latency at 1 session, pass-through over direct (< 1 ms)',
                           lat, 1.0, higher=False, unit=' ms'))
    out.append(target_line('1,000 idle sessions (<= 64 KiB per session)',
                           [('submilter', getattr(b, 'idle_kib', None))], 64, higher=False,
                           unit=' KiB'))
    out.append(target_line('50 MB message, RSS growth (<= 2 MiB; spool left empty: see Memory)',
                           [('submilter', getattr(b, 'big_growth', None))], 2.0, higher=False,
                           unit=' MiB'))
    return out


# -------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--srcdir', required=True)
    ap.add_argument('--builddir', required=True)
    ap.add_argument('--rundir', required=True, help='scratch folder (removed by run)')
    ap.add_argument('--out', required=True, help='the results file to write')
    ap.add_argument('--haraka', default='', help='folder holding node_modules/Haraka')
    ap.add_argument('--count', type=int, default=20000)
    ap.add_argument('--repeat', type=int, default=3,
                    help='direct/pass-through pairs per point (median ratio)')
    ap.add_argument('--cap', type=float, default=12.0, help='seconds per slow point')
    ap.add_argument('--cap-fast', type=float, default=60.0, help='seconds per fast point')
    ap.add_argument('--only', default='', help='comma list of scenarios (and "memory")')
    ap.add_argument('--points', default='', help='e.g. 1x1,20x10')
    ap.add_argument('--netns', action='store_true', help='we run in a private netns')
    ap.add_argument('--profile', default='subm-pass,subm-rsa,pf-subm-empty',
                    help='scenarios to profile with perf at 20x1 (empty: none)')
    o = ap.parse_args()
    o.benchdir = os.path.join(o.srcdir, 't', 'bench')
    o.submilter = os.environ.get('SUBMILTER') or os.path.join(o.builddir, 'filter', 'submilter')
    o.plugin_dir = os.path.join(o.builddir, 't', 'plugin.d')
    o.lat_so = os.path.join(o.rundir, 'lat.so')
    o.drive = os.path.join(o.rundir, 'drive')
    o.only = [x for x in o.only.split(',') if x]
    o.profile = [x for x in o.profile.split(',') if x]
    o.points = [tuple(int(x) for x in p.split('x')) for p in o.points.split(',') if p] or POINTS
    o.default_chain = default_chain(o)
    if o.haraka and not os.path.exists(os.path.join(o.haraka, 'node_modules', 'Haraka')):
        o.haraka = ''
    started = time.time()
    b = Bench(o)

    def on_signal(sig, frame):
        b.procs.stop_all()
        sys.exit(1)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        b.phase_checks()
        b.first_skip = dict(b.skipped)
        b.phase_points()
    finally:
        b.procs.stop_all()
    text = write_results(b, o, started, time.time() - started)
    print(text)
    log('results written to', o.out)


def default_chain(o):
    """default_chain - the plugin blocks of conf/submilter.conf; the dkim
    block gets the bench's signing table (marker @SIGN_TABLE@)."""
    path = os.path.join(o.srcdir, 'conf', 'submilter.conf')
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = ''
    return chain_from_conf(text)


def chain_from_conf(text):
    """the `plugin NAME { ... }` blocks of a config text (a dkim block is
    added when there is none)."""
    blocks, i = [], 0
    for m in re.finditer(r'^\s*plugin\s+(\w+)\s*\{', text, re.M):
        if m.start() < i:
            continue
        depth, j = 1, m.end()
        while j < len(text) and depth:
            if text[j] == '{':
                depth += 1
            elif text[j] == '}':
                depth -= 1
            elif text[j] == '#':
                j = text.find('\n', j)
                if j < 0:
                    j = len(text)
                continue
            j += 1
        block = text[m.start():j].strip()
        if m.group(1) == 'dkim':
            block = dkim_block(block)
        blocks.append(block)
        i = j
    if not any(b.startswith('plugin dkim') for b in blocks):
        blocks.append(dkim_block('plugin dkim {\n}'))
    return '\n'.join(blocks)


def dkim_block(block):
    """the dkim block with its sign_table option replaced by a marker."""
    lines = [l for l in block.split('\n') if not re.match(r'\s*sign_table\s*=', l)]
    body = '\n'.join(lines).rstrip()
    assert body.endswith('}')
    return body[:-1].rstrip() + '\n    sign_table = "@SIGN_TABLE@"\n}'


if __name__ == '__main__':
    main()
