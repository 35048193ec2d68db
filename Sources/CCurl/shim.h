#ifndef VPHONE_CCURL_SHIM_H
#define VPHONE_CCURL_SHIM_H

#include <curl/curl.h>

/*
 * Typed wrappers around libcurl's variadic entry points, which Swift cannot call directly
 * (curl_easy_setopt, curl_easy_getinfo, curl_multi_setopt and curl_share_setopt take `...`).
 * Each wrapper passes exactly the C type the option expects, so there is no integer-width or
 * pointer-vs-long confusion at the call site. Only the Transport module uses this header
 * (ARCHITECTURE rule 3).
 */

/* MARK: - curl_easy_setopt */

static inline CURLcode curlshim_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode curlshim_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    /* libcurl copies string options (except CURLOPT_POSTFIELDS, which we never use). */
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode curlshim_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode curlshim_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode curlshim_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

/* CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION */
static inline CURLcode curlshim_easy_setopt_write_callback(CURL *handle, CURLoption option,
                                                           curl_write_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

/* CURLOPT_XFERINFOFUNCTION */
static inline CURLcode curlshim_easy_setopt_xferinfo_callback(CURL *handle, curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

/* CURLOPT_*_BLOB (CAINFO_BLOB, ...): libcurl copies the bytes (CURL_BLOB_COPY), so they need only live
   for the call. */
static inline CURLcode curlshim_easy_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length) {
    struct curl_blob blob;
    blob.data = (void *)data;
    blob.len = length;
    blob.flags = CURL_BLOB_COPY;
    return curl_easy_setopt(handle, option, &blob);
}

/* CURLOPT_SHARE */
static inline CURLcode curlshim_easy_setopt_share(CURL *handle, CURLSH *share) {
    return curl_easy_setopt(handle, CURLOPT_SHARE, share);
}

/* MARK: - curl_easy_getinfo */

static inline CURLcode curlshim_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode curlshim_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    /* The string belongs to the handle and is valid until the next transfer or reset. */
    char *result = NULL;
    CURLcode code = curl_easy_getinfo(handle, info, &result);
    *value = result;
    return code;
}

static inline CURLcode curlshim_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode curlshim_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    /* CURLINFO_PRIVATE is documented as a `char **`; any data pointer round-trips through it. */
    char *result = NULL;
    CURLcode code = curl_easy_getinfo(handle, info, &result);
    *value = (void *)result;
    return code;
}

/* MARK: - curl_multi_setopt */

static inline CURLMcode curlshim_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

static inline CURLMcode curlshim_multi_setopt_pointer(CURLM *handle, CURLMoption option, void *value) {
    return curl_multi_setopt(handle, option, value);
}

/* MARK: - curl_share_setopt */

static inline CURLSHcode curlshim_share_setopt_long(CURLSH *handle, CURLSHoption option, long value) {
    return curl_share_setopt(handle, option, value);
}

/* MARK: - Constants defined through casts, which Swift does not import */

static inline unsigned long curlshim_auth_basic_or_digest(void) {
    return CURLAUTH_BASIC | CURLAUTH_DIGEST;
}

static inline long curlshim_global_all(void) {
    return CURL_GLOBAL_ALL;
}

static inline curl_version_info_data *curlshim_version_info(void) {
    return curl_version_info(CURLVERSION_NOW);
}

#endif
