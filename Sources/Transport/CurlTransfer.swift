// One transfer on a loop: the options it sets on its easy handle, the body it collects, its result.

import CCurl
import Foundation

/// A request running on an easy handle. Created, used and released on one loop thread.
final class CurlTransfer {
    static let protocols = "http,https,tftp,ftp"
    /// Redirects may only lead to http or https: never to file://, and not to ftp/tftp either.
    static let redirectProtocols = "http,https"
    static let maxRedirects = 5
    /// `Connection: close`, built once and shared read-only by all handles (libcurl does not copy lists).
    static let closeHeader = CurlList(["Connection: close"])

    let job: CurlLoop.Job
    let easy: EasyHandle
    var share: ConnectionShare?
    private(set) var body: [UInt8] = []
    /// Set when the write callback refused bytes past `maxBytes`: the CURLE_WRITE_ERROR that follows
    /// is our abort, not a disk or callback failure.
    private(set) var exceededMaxBytes = false
    private var reserved = false
    /// The PEM roots handed to libcurl as CAINFO_BLOB, built by `loadRoots()`.
    private var rootsBlob: [UInt8]? = nil
    /// Set by `loadRoots()` when `extraCAFile` could not be read into `rootsBlob`: why, for messages.
    private(set) var unreadableCAFile: String? = nil

    init(job: CurlLoop.Job, easy: EasyHandle) {
        self.job = job
        self.easy = easy
    }

    // MARK: - Options

    /// Everything `configure` sets from a request but its URL and User-Agent: a pooled handle last configured from
    /// equal settings has every other option already, so the next transfer sets only its own (a fleet's transfers
    /// mostly share one set; a full reset and configuration cost libcurl ~6k instructions a transfer). Requests
    /// with credentials anywhere (fields, or userinfo in the URL or the proxy), in-memory roots or a connection share
    /// are always configured afresh: libcurl keeps a handle's authentication state (the method picked, a Digest
    /// nonce) until `curl_easy_reset`, and the next phone's first request must ask without credentials, as a phone's
    /// does, never answer a challenge it was not sent.
    struct Settings: Equatable {
        enum Roots: Equatable {
            case libcurlDefault
            /// CAINFO alone: the system roots and the extra file as one (`TrustFiles.combined`).
            case combined(String)
            /// CAINFO and the system CAPATH.
            case file(String)
        }
        var connectTimeoutMs: Int
        var totalTimeoutMs: Int
        var maxBytes: Int
        var insecure: Bool
        var roots: Roots
        var proxy: String?
        var sourceInterface: String?
    }

    /// The roots a request without in-memory ones (`rootsBlob`) is verified with.
    private func roots(trust: TrustFiles) -> Settings.Roots {
        let request = job.request
        if !request.insecure, URLText.scheme(of: request.url) == "https",
            let combined = trust.combined(extraCAFile: request.extraCAFile)
        {
            return .combined(combined)
        }
        if let extraCAFile = request.extraCAFile { return .file(extraCAFile) }
        return .libcurlDefault
    }

    /// The request's settings, nil when its handle must be configured afresh whatever it had (see `Settings`).
    private func settings(roots: Settings.Roots?) -> Settings? {
        let request = job.request
        let at = UInt8(ascii: "@")
        guard let roots, !request.reuseConnection, request.username == nil, request.password == nil,
            request.proxyUsername == nil, request.proxyPassword == nil, !request.url.utf8.contains(at),
            !(request.proxy?.utf8.contains(at) ?? false)
        else { return nil }
        return Settings(
            connectTimeoutMs: request.connectTimeoutMs,
            totalTimeoutMs: request.totalTimeoutMs,
            maxBytes: request.maxBytes,
            insecure: request.insecure,
            roots: roots,
            proxy: request.proxy,
            sourceInterface: request.sourceInterface
        )
    }

    func configure(share: ConnectionShare?, systemCAPath: String, trust: TrustFiles) throws(CurlCallError) {
        let request = job.request
        let easy = self.easy
        let roots = rootsBlob == nil ? roots(trust: trust) : nil
        let settings = settings(roots: roots)
        if let settings, easy.settings == settings {
            // Every other option is as this request would set it.
            try configureOwn()
            return
        }
        // Half configured until the end: a failure leaves nothing to reuse.
        if easy.settings != nil { try easy.reset() }
        try easy.set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(easy.errorBuffer), "ERRORBUFFER")
        try configureOwn()
        // No SIGALRM for timeouts: this runs on a thread among many.
        try easy.set(CURLOPT_NOSIGNAL, true, "NOSIGNAL")
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, max(0, request.connectTimeoutMs), "CONNECTTIMEOUT_MS")
        try easy.set(CURLOPT_TIMEOUT_MS, max(0, request.totalTimeoutMs), "TIMEOUT_MS")
        // The phone speaks HTTP/1.1 (libcurl would otherwise offer h2 over TLS).
        try easy.set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1), "HTTP_VERSION")

        // Security: the schemes, even if a URL slipped past the check before this point.
        try easy.set(CURLOPT_PROTOCOLS_STR, string: Self.protocols, "PROTOCOLS_STR")
        try easy.set(CURLOPT_REDIR_PROTOCOLS_STR, string: Self.redirectProtocols, "REDIR_PROTOCOLS_STR")
        try easy.set(CURLOPT_FOLLOWLOCATION, true, "FOLLOWLOCATION")
        try easy.set(CURLOPT_MAXREDIRS, Self.maxRedirects, "MAXREDIRS")
        // We judge HTTP statuses ourselves (FAILONERROR would hide 401 vs 404 details).
        try easy.set(CURLOPT_FAILONERROR, false, "FAILONERROR")

        // Size cap: refused up front when the size is announced, counted in the write callback otherwise.
        if request.maxBytes > 0 {
            try easy.set(CURLOPT_MAXFILESIZE_LARGE, offset: Int64(request.maxBytes), "MAXFILESIZE_LARGE")
        }
        try easy.set(CURLOPT_WRITEFUNCTION, callback: curlWriteBody, "WRITEFUNCTION")

        // TLS: verified by default (spec §5).
        try easy.set(CURLOPT_SSL_VERIFYPEER, request.insecure ? 0 : 1, "SSL_VERIFYPEER")
        try easy.set(CURLOPT_SSL_VERIFYHOST, request.insecure ? 0 : 2, "SSL_VERIFYHOST")
        // With OpenSSL, CAINFO (a file) or CAINFO_BLOB (PEM in memory) and CAPATH (a hashed directory) are
        // all consulted, so the extra roots are trusted in addition to the system store, not instead of it.
        if let rootsBlob {
            try easy.set(CURLOPT_CAINFO_BLOB, blob: rootsBlob, "CAINFO_BLOB")
            try easy.set(CURLOPT_CAPATH, string: systemCAPath, "CAPATH")
        } else if let roots {
            switch roots {
            case .combined(let combined):
                // The same roots as one file and no CAPATH: libcurl then parses them once per loop, not per
                // connection (see TrustFiles).
                try easy.set(CURLOPT_CAINFO, string: combined, "CAINFO")
                try easy.set(CURLOPT_CAPATH, string: nil, "CAPATH")
            case .file(let extraCAFile):
                try easy.set(CURLOPT_CAINFO, string: extraCAFile, "CAINFO")
                try easy.set(CURLOPT_CAPATH, string: systemCAPath, "CAPATH")
            case .libcurlDefault:
                break
            }
        }

        if request.username != nil || request.password != nil {
            try easy.set(CURLOPT_USERNAME, string: request.username ?? "", "USERNAME")
            try easy.set(CURLOPT_PASSWORD, string: request.password ?? "", "PASSWORD")
        }
        // Basic or Digest, whichever the server asks for; applies to credentials in the URL too.
        try easy.set(CURLOPT_HTTPAUTH, Int(curlshim_auth_basic_or_digest()), "HTTPAUTH")

        // "" disables proxies named by the environment (http_proxy, ...): the phone has only its own.
        try easy.set(CURLOPT_PROXY, string: request.proxy ?? "", "PROXY")
        if request.proxyUsername != nil || request.proxyPassword != nil {
            try easy.set(CURLOPT_PROXYUSERNAME, string: request.proxyUsername ?? "", "PROXYUSERNAME")
            try easy.set(CURLOPT_PROXYPASSWORD, string: request.proxyPassword ?? "", "PROXYPASSWORD")
        }
        // The proxy's credentials (these fields or its `user:password@host:port`): Basic or Digest too.
        try easy.set(CURLOPT_PROXYAUTH, Int(curlshim_auth_basic_or_digest()), "PROXYAUTH")
        if let sourceInterface = request.sourceInterface {
            try easy.set(CURLOPT_INTERFACE, string: sourceInterface, "INTERFACE")
        }

        if request.reuseConnection {
            try easy.setShare(share?.raw)
        } else {
            // A phone never borrows a connection, nor resumes another phone's TLS session.
            try easy.set(CURLOPT_FRESH_CONNECT, true, "FRESH_CONNECT")
            try easy.set(CURLOPT_FORBID_REUSE, true, "FORBID_REUSE")
            try easy.set(CURLOPT_SSL_SESSIONID_CACHE, false, "SSL_SESSIONID_CACHE")
            // Says so to the server, which then closes first: the TIME_WAIT of every fetch lands on the
            // server, not on this host, whose ephemeral ports would otherwise run out at ~470 new
            // connections per second to one server (28k ports / 60 s) with thousands of phones.
            try easy.set(CURLOPT_HTTPHEADER, list: Self.closeHeader.list, "HTTPHEADER")
        }
        easy.settings = settings
    }

    /// The options that are this transfer's own: where it writes, what it fetches and as whom.
    private func configureOwn() throws(CurlCallError) {
        easy.errorBuffer[0] = 0
        let me = Unmanaged.passUnretained(self).toOpaque()
        try easy.set(CURLOPT_PRIVATE, pointer: me, "PRIVATE")
        try easy.set(CURLOPT_WRITEDATA, pointer: me, "WRITEDATA")
        try easy.set(CURLOPT_URL, string: job.request.url, "URL")
        try easy.set(CURLOPT_USERAGENT, string: job.request.userAgent, "USERAGENT")
    }

    // MARK: - Trusted roots

    /// Builds the in-memory roots from `extraCAPEM`, before `configure`. A blob replaces CAINFO in libcurl, so
    /// when `extraCAFile` is given too its contents travel inside the blob: both are trusted. Returns a
    /// failure when an https fetch cannot have the roots it asked for (the file cannot be read).
    func loadRoots() -> FetchFailure? {
        let request = job.request
        guard var blob = request.extraCAPEM, !blob.isEmpty else { return nil }
        if let file = request.extraCAFile {
            if let contents = FileManager.default.contents(atPath: file), !contents.isEmpty {
                if blob.last != UInt8(ascii: "\n") { blob.append(UInt8(ascii: "\n")) }
                blob.append(contentsOf: contents)
            } else {
                let reason = FileManager.default.fileExists(atPath: file) ? "unreadable or empty" : "no such file"
                unreadableCAFile = "\(file) (\(reason))"
                // Plain http, ftp and tftp never use the roots; an https fetch would silently lose them.
                if URLText.scheme(of: request.url) == "https" {
                    return failure(
                        .tls,
                        timings: .zero,
                        "TLS with \(URLText.hostAndPort(of: request.url)) not attempted for "
                            + "\(URLText.redacted(request.url)): the CA file \(file) cannot be read (\(reason)); "
                            + "fix extraCAFile or leave it unset"
                    )
                }
            }
        }
        rootsBlob = blob
        return nil
    }

    // MARK: - Body

    /// Called from `curlWriteBody` with each chunk. Returns false (abort) past `maxBytes`.
    fileprivate func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let maxBytes = job.request.maxBytes
        guard body.count + bytes.count <= maxBytes else {
            exceededMaxBytes = true
            return false
        }
        if !reserved {
            reserved = true
            if let length = try? easy.offset(CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, "CONTENT_LENGTH_DOWNLOAD_T"),
                length > 0
            {
                body.reserveCapacity(min(Int(length), maxBytes))
            }
        }
        body.append(contentsOf: bytes)
        return true
    }

    // MARK: - Result

    /// Timings as libcurl measured them; zero where a call fails (never expected).
    func timings() -> FetchTimings {
        func microseconds(_ info: CURLINFO, _ name: StaticString) -> Int64 {
            do { return try easy.offset(info, name) } catch { return 0 }
        }
        return FetchTimings(
            dnsUs: microseconds(CURLINFO_NAMELOOKUP_TIME_T, "NAMELOOKUP_TIME_T"),
            connectUs: microseconds(CURLINFO_CONNECT_TIME_T, "CONNECT_TIME_T"),
            tlsUs: microseconds(CURLINFO_APPCONNECT_TIME_T, "APPCONNECT_TIME_T"),
            firstByteUs: microseconds(CURLINFO_STARTTRANSFER_TIME_T, "STARTTRANSFER_TIME_T"),
            totalUs: microseconds(CURLINFO_TOTAL_TIME_T, "TOTAL_TIME_T")
        )
    }

    /// The outcome, read from the easy handle before it is reset.
    func result(_ code: CURLcode) -> Result<FetchResponse, FetchFailure> {
        let timings = timings()
        let status = (try? easy.long(CURLINFO_RESPONSE_CODE, "RESPONSE_CODE")) ?? 0
        let effectiveURL = (try? easy.string(CURLINFO_EFFECTIVE_URL, "EFFECTIVE_URL")) ?? job.request.url
        guard code == CURLE_OK else {
            return .failure(failure(code, status: status, effectiveURL: effectiveURL, timings: timings))
        }
        if let failure = statusFailure(status, effectiveURL: effectiveURL, timings: timings) {
            return .failure(failure)
        }
        let contentType = try? easy.string(CURLINFO_CONTENT_TYPE, "CONTENT_TYPE")
        return .success(
            FetchResponse(
                status: status,
                body: body,
                effectiveURL: effectiveURL,
                contentType: contentType,
                timings: timings
            )
        )
    }

    var redirectCount: Int { (try? easy.long(CURLINFO_REDIRECT_COUNT, "REDIRECT_COUNT")) ?? 0 }
}

/// `CURLOPT_WRITEFUNCTION`: appends to the transfer's body; returning less than given aborts the
/// transfer with CURLE_WRITE_ERROR, which is how the size cap stops reading.
private func curlWriteBody(
    _ data: UnsafeMutablePointer<CChar>?,
    _ size: Int,
    _ count: Int,
    _ context: UnsafeMutableRawPointer?
) -> Int {
    guard let context else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    guard length > 0 else { return 0 }
    guard let data else { return 0 }
    return transfer.receive(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
}
