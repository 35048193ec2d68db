/*
 * curl-floor: the fastest a libcurl multi client can run vphone's four-GET boot flow, with no phone in it.
 *
 * N "phones", each fetching the initial file, its standard file (Config{MAC}.cfg), the product file and the
 * master file one after another, every GET on a fresh connection with `Connection: close`, as `vphone fleet`
 * does by default, on L loop threads (each its own CURLM, pooled easy handles reset between transfers, at most
 * IN_FLIGHT transfers per loop, 256 as vphone's --max-in-flight). The body is copied into a growing buffer and
 * dropped: no parsing, no decryption, no merge, no flash. The libcurl options of vphone's transfers
 * (Sources/Transport/CurlTransfer.swift) that matter for plain HTTP are set, with the KX-UTG300 profile's timeouts
 * and size cap, and no proxy from the environment.
 *
 * Its request rate against wrk's is the ceiling for any libcurl-based fleet on this machine: what vphone's phone
 * logic can spend is the gap between this program and vphone. scripts/bench-fleet builds and runs it ("floor").
 *
 * Build: cc -O2 -o curl-floor Benchmarks/curl-floor.c -lcurl -lpthread
 * Usage: curl-floor BASE_URL COUNT [LOOPS [IN_FLIGHT_PER_LOOP]]     e.g. curl-floor http://127.0.0.1:18780 10000 2 256
 * Prints one JSON object: phones, requests, failed, duration_s, phones_per_s, requests_per_s, cpu_ms_per_phone.
 * Exit 0, or 1 when a transfer failed (a phone stops at its first failure), 64 for bad arguments, 70 when libcurl
 * cannot be set up.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    char *data;
    size_t size, capacity;
} Body;

typedef struct {
    int index;       /* phone number, 0-based */
    int step;        /* 0 initial, 1 standard, 2 product, 3 master */
    CURL *easy;
    Body body;
} Phone;

typedef struct {
    const char *base;
    int first, count, stride; /* the phones of this loop: first, first+stride, ... (count of them) */
    int inFlight;
    long requests, failed;
} Loop;

static struct curl_slist *closeHeader;

static size_t onBody(char *ptr, size_t size, size_t n, void *user) {
    Body *b = user;
    size_t len = size * n;
    if (b->size + len > b->capacity) {
        size_t cap = b->capacity ? b->capacity * 2 : 16384;
        while (cap < b->size + len) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) return 0;
        b->data = grown;
        b->capacity = cap;
    }
    memcpy(b->data + b->size, ptr, len);
    b->size += len;
    return len;
}

/* Starts the phone's current GET; 0 when libcurl could not (the caller counts the phone failed). */
static int startStep(CURLM *multi, Loop *loop, Phone *p, CURL **pool, int *pooled) {
    char url[512];
    switch (p->step) {
    case 0: snprintf(url, sizeof url, "%s/KX-UTG300.cfg", loop->base); break;
    case 1: snprintf(url, sizeof url, "%s/Config0080F0%06X.cfg", loop->base, 1 + p->index); break;
    case 2: snprintf(url, sizeof url, "%s/ConfigKX-UTG300.cfg", loop->base); break;
    default: snprintf(url, sizeof url, "%s/ConfigCom.cfg", loop->base); break;
    }
    char agent[96];
    snprintf(agent, sizeof agent, "Panasonic_KX-UTG300/03.210 (0080f0%06x)", 1 + p->index);
    CURL *e = *pooled > 0 ? pool[--*pooled] : curl_easy_init();
    if (!e) return 0;
    p->easy = e;
    p->body.size = 0;
    curl_easy_setopt(e, CURLOPT_PRIVATE, p);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,tftp,ftp");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)245760);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, onBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &p->body);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, closeHeader);
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return 0;
    }
    return 1;
}

static void *run(void *arg) {
    Loop *loop = arg;
    CURLM *multi = curl_multi_init();
    Phone *phones = calloc((size_t)loop->count, sizeof(Phone));
    CURL **pool = calloc((size_t)loop->inFlight, sizeof(CURL *));
    if (!multi || !phones || !pool) {
        fprintf(stderr, "curl-floor: out of memory setting up a loop\n");
        exit(70);
    }
    int pooled = 0, next = 0, running = 0, done = 0;
    while (done < loop->count) {
        while (running < loop->inFlight && next < loop->count) {
            Phone *p = &phones[next];
            p->index = loop->first + next * loop->stride;
            next++;
            if (startStep(multi, loop, p, pool, &pooled)) {
                running++;
            } else {
                loop->failed++;
                done++;
            }
        }
        int still;
        curl_multi_perform(multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            Phone *p;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&p);
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            CURLcode result = m->data.result;
            curl_multi_remove_handle(multi, m->easy_handle);
            curl_easy_reset(m->easy_handle);
            pool[pooled++] = m->easy_handle;
            loop->requests++;
            if (result != CURLE_OK || status != 200) {
                loop->failed++;
                p->step = 4;
            } else {
                p->step++;
            }
            if (p->step < 4 && !startStep(multi, loop, p, pool, &pooled)) {
                loop->failed++;
                p->step = 4;
            }
            if (p->step >= 4) {
                free(p->body.data);
                p->body.data = NULL;
                running--;
                done++;
            }
        }
        if (done < loop->count) curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < pooled; i++) curl_easy_cleanup(pool[i]);
    curl_multi_cleanup(multi);
    free(pool);
    free(phones);
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: curl-floor BASE_URL COUNT [LOOPS [IN_FLIGHT_PER_LOOP]]\n");
        return 64;
    }
    int count = atoi(argv[2]);
    int loops = argc > 3 ? atoi(argv[3]) : 2;
    int inFlight = argc > 4 ? atoi(argv[4]) : 256;
    if (count < 1 || loops < 1 || inFlight < 1) {
        fprintf(stderr, "curl-floor: COUNT, LOOPS and IN_FLIGHT_PER_LOOP must be positive integers\n");
        return 64;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl-floor: curl_global_init failed\n");
        return 70;
    }
    closeHeader = curl_slist_append(NULL, "Connection: close");
    Loop *all = calloc((size_t)loops, sizeof(Loop));
    pthread_t *threads = calloc((size_t)loops, sizeof(pthread_t));
    if (!closeHeader || !all || !threads) {
        fprintf(stderr, "curl-floor: out of memory\n");
        return 70;
    }
    double start = now();
    for (int i = 0; i < loops; i++) {
        all[i] = (Loop){.base = argv[1], .first = i, .stride = loops, .inFlight = inFlight,
                        .count = count / loops + (i < count % loops ? 1 : 0)};
        if (pthread_create(&threads[i], NULL, run, &all[i]) != 0) {
            fprintf(stderr, "curl-floor: cannot start loop thread %d\n", i);
            return 70;
        }
    }
    long requests = 0, failed = 0;
    for (int i = 0; i < loops; i++) {
        pthread_join(threads[i], NULL);
        requests += all[i].requests;
        failed += all[i].failed;
    }
    double seconds = now() - start;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"phones\": %d, \"requests\": %ld, \"failed\": %ld, \"duration_s\": %.3f, \"phones_per_s\": %.1f, "
           "\"requests_per_s\": %.1f, \"cpu_ms_per_phone\": %.4f}\n",
           count, requests, failed, seconds, count / seconds, requests / seconds, cpu * 1000 / count);
    curl_slist_free_all(closeHeader);
    curl_global_cleanup();
    free(threads);
    free(all);
    return failed ? 1 : 0;
}
