/*
 * replay.c - runs a libFuzzer target over files without libFuzzer, so the
 * seed corpus and every input that ever crashed (tests/fuzz/regressions/)
 * run in each test build, the sanitizer build included.
 *
 *   fuzz_rules_replay DIR_OR_FILE...
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vg_base.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int
run_file(const char *path)
{
    vg_buf b = {0};
    if (vg_read_file(path, &b) != VG_OK) {
        fprintf(stderr, "replay: can't read %s\n", path);
        return 1;
    }
    /* a copy of exactly the file's size, so ASan sees reads past the end */
    unsigned char *copy = malloc(b.len ? b.len : 1);
    if (copy == NULL)
        return 1;
    memcpy(copy, b.data, b.len);
    LLVMFuzzerTestOneInput(copy, b.len);
    free(copy);
    vg_buf_free(&b);
    return 0;
}

int
main(int argc, char **argv)
{
    int n = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: no such file or folder: %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed += run_file(argv[i]);
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            failed += run_file(path);
            n++;
        }
        if (d != NULL)
            closedir(d);
    }
    printf("replay: %d inputs, %d unreadable\n", n, failed);
    return failed != 0;
}
