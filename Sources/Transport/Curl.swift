// The one place libcurl's handles and return codes become Swift (ARCHITECTURE rule 3, STYLE 3).
// Every CURLcode, CURLMcode and CURLSHcode goes through `Curl.check`.

import CCurl

/// A libcurl call that did not return OK.
struct CurlCallError: Error, CustomStringConvertible {
    /// The function (and option) that failed, e.g. `curl_easy_setopt(CAINFO)`.
    var call: String
    var code: Int
    var curlMessage: String

    var description: String { "\(call) failed: \(curlMessage) (\(code))" }
}

enum Curl {
    // MARK: - The funnel

    @inline(__always)
    static func check(_ code: CURLcode, _ call: @autoclosure () -> String) throws(CurlCallError) {
        guard code != CURLE_OK else { return }
        throw CurlCallError(call: call(), code: Int(code.rawValue), curlMessage: message(code))
    }

    @inline(__always)
    static func check(_ code: CURLMcode, _ call: @autoclosure () -> String) throws(CurlCallError) {
        // CURLM_CALL_MULTI_PERFORM is obsolete (never returned since 7.20) and means "call again", not failure.
        guard code != CURLM_OK, code != CURLM_CALL_MULTI_PERFORM else { return }
        throw CurlCallError(
            call: call(),
            code: Int(code.rawValue),
            curlMessage: String(cString: curl_multi_strerror(code))
        )
    }

    @inline(__always)
    static func check(_ code: CURLSHcode, _ call: @autoclosure () -> String) throws(CurlCallError) {
        guard code != CURLSHE_OK else { return }
        throw CurlCallError(
            call: call(),
            code: Int(code.rawValue),
            curlMessage: String(cString: curl_share_strerror(code))
        )
    }

    static func message(_ code: CURLcode) -> String { String(cString: curl_easy_strerror(code)) }

    // MARK: - Process-wide state

    /// `curl_global_init`, run once per process on first use (a static `let` is initialised exactly once,
    /// thread-safely), before any handle exists.
    static let globalInit: Result<Void, CurlCallError> = Result { () throws(CurlCallError) in
        try check(curl_global_init(curlshim_global_all()), "curl_global_init")
    }

    /// The CA directory libcurl was built with (`/etc/ssl/certs` on Debian), used together with an
    /// extra CA file so that both are trusted.
    static let defaultCAPath: String = {
        if let info = curlshim_version_info(), let capath = info.pointee.capath { return String(cString: capath) }
        return "/etc/ssl/certs"
    }()

    /// The CA bundle libcurl was built with (`/etc/ssl/certs/ca-certificates.crt` on Debian), or nil.
    static let defaultCAInfo: String? = {
        if let info = curlshim_version_info(), let cainfo = info.pointee.cainfo { return String(cString: cainfo) }
        return nil
    }()

    static let version: String = {
        if let info = curlshim_version_info(), let version = info.pointee.version { return String(cString: version) }
        return "unknown"
    }()
}

// MARK: - Easy handle

/// One `CURL *` and its error buffer. Owned by one loop thread; reused across transfers after
/// `curl_easy_reset`.
final class EasyHandle {
    let raw: UnsafeMutableRawPointer
    /// `CURLOPT_ERRORBUFFER`: libcurl writes a detailed message here when a transfer fails.
    let errorBuffer: UnsafeMutablePointer<CChar>
    /// The settings every option of this handle was last configured from (`CurlTransfer.Settings`), when they
    /// allow the next transfer with the same settings to set only its own options; nil after a reset, and while
    /// the handle is half configured.
    var settings: CurlTransfer.Settings?

    init?() {
        guard let raw = curl_easy_init() else { return nil }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    /// The detailed error text of the last transfer, or "" if libcurl left none.
    var errorText: String {
        var text = String(cString: errorBuffer)
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return text
    }

    // MARK: Typed setopt / getinfo through the funnel

    func set(_ option: CURLoption, _ value: Int, _ name: StaticString) throws(CurlCallError) {
        try Curl.check(curlshim_easy_setopt_long(raw, option, value), "curl_easy_setopt(\(name))")
    }

    func set(_ option: CURLoption, _ value: Bool, _ name: StaticString) throws(CurlCallError) {
        try set(option, value ? 1 : 0, name)
    }

    func set(_ option: CURLoption, string value: String?, _ name: StaticString) throws(CurlCallError) {
        // libcurl copies string options, so the pointer need only live for the call.
        let code: CURLcode
        if let value {
            code = value.withCString { curlshim_easy_setopt_string(raw, option, $0) }
        } else {
            code = curlshim_easy_setopt_string(raw, option, nil)
        }
        try Curl.check(code, "curl_easy_setopt(\(name))")
    }

    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?, _ name: StaticString) throws(CurlCallError)
    {
        try Curl.check(curlshim_easy_setopt_pointer(raw, option, value), "curl_easy_setopt(\(name))")
    }

    func set(_ option: CURLoption, offset value: Int64, _ name: StaticString) throws(CurlCallError) {
        try Curl.check(curlshim_easy_setopt_off_t(raw, option, curl_off_t(value)), "curl_easy_setopt(\(name))")
    }

    func set(
        _ option: CURLoption,
        list value: UnsafeMutablePointer<curl_slist>?,
        _ name: StaticString
    )
        throws(CurlCallError)
    {
        try Curl.check(curlshim_easy_setopt_slist(raw, option, value), "curl_easy_setopt(\(name))")
    }

    func set(_ option: CURLoption, callback: curl_write_callback, _ name: StaticString) throws(CurlCallError) {
        try Curl.check(curlshim_easy_setopt_write_callback(raw, option, callback), "curl_easy_setopt(\(name))")
    }

    /// A `CURLOPT_*_BLOB` option. libcurl copies the bytes, so they need only live for the call.
    func set(_ option: CURLoption, blob value: [UInt8], _ name: StaticString) throws(CurlCallError) {
        let code = value.withUnsafeBytes { curlshim_easy_setopt_blob(raw, option, $0.baseAddress, $0.count) }
        try Curl.check(code, "curl_easy_setopt(\(name))")
    }

    func setShare(_ share: UnsafeMutableRawPointer?) throws(CurlCallError) {
        try Curl.check(curlshim_easy_setopt_share(raw, share), "curl_easy_setopt(SHARE)")
    }

    func long(_ info: CURLINFO, _ name: StaticString) throws(CurlCallError) -> Int {
        var value = 0
        try Curl.check(curlshim_easy_getinfo_long(raw, info, &value), "curl_easy_getinfo(\(name))")
        return value
    }

    func string(_ info: CURLINFO, _ name: StaticString) throws(CurlCallError) -> String? {
        var value: UnsafePointer<CChar>? = nil
        try Curl.check(curlshim_easy_getinfo_string(raw, info, &value), "curl_easy_getinfo(\(name))")
        return value.map { String(cString: $0) }
    }

    func offset(_ info: CURLINFO, _ name: StaticString) throws(CurlCallError) -> Int64 {
        var value: curl_off_t = 0
        try Curl.check(curlshim_easy_getinfo_off_t(raw, info, &value), "curl_easy_getinfo(\(name))")
        return Int64(value)
    }

    func pointer(_ info: CURLINFO, _ name: StaticString) throws(CurlCallError) -> UnsafeMutableRawPointer? {
        var value: UnsafeMutableRawPointer? = nil
        try Curl.check(curlshim_easy_getinfo_pointer(raw, info, &value), "curl_easy_getinfo(\(name))")
        return value
    }

    /// Back to the state of a new handle (connections, DNS and CA caches belong to the multi handle
    /// and survive), ready for the next transfer. The share is not part of the reset: detach it too.
    func reset() throws(CurlCallError) {
        settings = nil
        curl_easy_reset(raw)
        try setShare(nil)
        errorBuffer[0] = 0
    }
}

// MARK: - String list

/// An immutable `curl_slist`, for options such as `CURLOPT_HTTPHEADER` that keep the pointer for the
/// whole transfer. Built once and never modified, so handles on any thread may read it.
final class CurlList: @unchecked Sendable {
    let list: UnsafeMutablePointer<curl_slist>?

    init(_ items: [String]) {
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for item in items {
            // curl_slist_append copies the string; NULL means out of memory, leaving `list` unchanged.
            guard let appended = item.withCString({ curl_slist_append(list, $0) }) else { break }
            list = appended
        }
        self.list = list
    }

    deinit { curl_slist_free_all(list) }
}

// MARK: - Share handle

/// A `CURLSH` holding the connection cache and TLS sessions of one connection group, so that
/// connections are reused only inside that group. Used by one loop thread only, so it needs no locks.
final class ConnectionShare {
    let raw: UnsafeMutableRawPointer
    /// Transfers currently attached; the share is freed only when 0.
    var users = 0
    var lastUsed: UInt64 = 0

    init() throws(CurlCallError) {
        guard let raw = curl_share_init() else {
            throw CurlCallError(call: "curl_share_init", code: 0, curlMessage: "out of memory")
        }
        self.raw = raw
        do {
            try Curl.check(
                curlshim_share_setopt_long(raw, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_CONNECT.rawValue)),
                "curl_share_setopt(SHARE, CONNECT)"
            )
            try Curl.check(
                curlshim_share_setopt_long(raw, CURLSHOPT_SHARE, Int(CURL_LOCK_DATA_SSL_SESSION.rawValue)),
                "curl_share_setopt(SHARE, SSL_SESSION)"
            )
        } catch {
            Self.cleanup(raw)
            throw error
        }
    }

    deinit { Self.cleanup(raw) }

    private static func cleanup(_ raw: UnsafeMutableRawPointer) {
        // Only fails (CURLSHE_IN_USE) while an easy handle is attached; the loop frees a share only when
        // no transfer uses it and every recycled handle has been detached, so there is nothing to recover.
        do { try Curl.check(curl_share_cleanup(raw), "curl_share_cleanup") } catch { assertionFailure("\(error)") }
    }
}
