/*
 * check_spool.c - the message spool: memory, then an unlinked file; reads
 * across the boundary; nothing left in the spool folder.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

/* count_entries - files in dir (not . and ..). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

START_TEST(test_memory_then_file)
{
    char dir[] = "/tmp/check_spool.XXXXXX";
    struct spool *sp;
    unsigned char buf[10000], back[10000];
    size_t i;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7);
    sp = spool_new(4096, dir);
    ck_assert_int_eq(spool_write(sp, buf, 3000), 0);
    ck_assert_int_eq(spool_on_disk(sp), 0);
    ck_assert_int_eq(spool_write(sp, buf + 3000, 7000), 0);
    ck_assert_int_eq(spool_on_disk(sp), 1);
    ck_assert_uint_eq(spool_size(sp), 10000);
    ck_assert_int_eq(count_entries(dir), 0);     /* the file has no name */
    /* a read that spans memory and file */
    ck_assert_int_eq(spool_read(sp, 4000, back, 200), 200);
    ck_assert_int_eq(memcmp(back, buf + 4000, 200), 0);
    ck_assert_int_eq(spool_read(sp, 0, back, sizeof(back)), 10000);
    ck_assert_int_eq(memcmp(back, buf, sizeof(buf)), 0);
    ck_assert_int_eq(spool_read(sp, 10000, back, 10), 0);
    spool_reset(sp);
    ck_assert_uint_eq(spool_size(sp), 0);
    ck_assert_int_eq(spool_on_disk(sp), 0);
    spool_free(&sp);
    ck_assert_ptr_null(sp);
    ck_assert_int_eq(count_entries(dir), 0);
    rmdir(dir);
}
END_TEST

START_TEST(test_unwritable_dir)
{
    struct spool *sp = spool_new(16, "/nonexistent/folder");
    char data[64] = { 0 };

    ck_assert_int_eq(spool_write(sp, data, 16), 0);      /* fits in memory */
    ck_assert_int_eq(spool_write(sp, data, 48), -1);     /* needs the file */
    spool_free(&sp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("spool");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_memory_then_file);
    tcase_add_test(tc, test_unwritable_dir);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
