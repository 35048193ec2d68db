// Turning libcurl results and HTTP statuses into FetchFailure kinds with messages a user can act on.

import CCurl

extension CurlTransfer {
    // MARK: - HTTP statuses of completed transfers

    /// A failure for an HTTP status the phone cannot use, or nil for success. FTP (226, ...) and TFTP
    /// (0) transfers that completed are successes whatever their code.
    func statusFailure(_ status: Int, effectiveURL: String, timings: FetchTimings) -> FetchFailure? {
        let request = job.request
        let scheme = URLText.scheme(of: effectiveURL) ?? ""
        // Through an HTTP proxy, an ftp:// URL is fetched with HTTP and gets HTTP statuses.
        let speaksHTTP = scheme == "http" || scheme == "https" || (request.proxy != nil && scheme == "ftp")
        guard speaksHTTP, status >= 300 || status < 100 else { return nil }
        let host = URLText.hostAndPort(of: effectiveURL)
        let url = URLText.redacted(effectiveURL)
        let hasCredentials = request.username != nil || URLText.credentials(in: request.url) != nil
        let hasProxyCredentials =
            request.proxyUsername != nil || request.proxy.flatMap { URLText.credentials(in: $0) } != nil
        let message: String
        switch status {
        case 401 where hasCredentials:
            return failure(
                .auth,
                httpStatus: status,
                timings: timings,
                "\(host) rejected the credentials for \(url) (HTTP \(status)): check the user name and password "
                    + "(USR_PROV_SVR_AUTH_ID / USR_PROV_SVR_AUTH_PASSWORD or the URL's user:password@)"
            )
        case 407 where hasProxyCredentials:
            return failure(
                .auth,
                httpStatus: status,
                timings: timings,
                "the proxy \(proxyName) rejected the proxy credentials for \(url) (HTTP 407): check the proxy's "
                    + "user name and password"
            )
        case 401:
            message =
                "\(host) requires a login for \(url) (HTTP 401) and no credentials were given: "
                + "set the user name and password"
        case 407:
            message =
                "the proxy \(proxyName) requires a login (HTTP 407) for \(url) and no proxy credentials were "
                + "given: set the proxy's user name and password"
        case 403:
            message = "\(host) refused access to \(url) (HTTP 403): check the server's permissions for this phone"
        case 404, 410:
            message =
                "\(host) has no file at \(url) (HTTP \(status)): check the path, the file name and "
                + "its {MAC}/{MODEL} macros"
        case 300..<400:
            message =
                "\(host) answered HTTP \(status) for \(url) without a usable Location, so the redirect "
                + "was not followed: fix the server's redirect"
        case 500..<600:
            message = "\(host) failed with HTTP \(status) for \(url): the server has a problem, check its logs"
        case ..<100:
            message = "\(host) sent no HTTP status for \(url): is it an HTTP server?"
        default:
            message = "\(host) answered HTTP \(status) for \(url)"
        }
        return failure(.httpStatus, httpStatus: status, timings: timings, message)
    }

    // MARK: - libcurl errors

    func failure(_ code: CURLcode, status: Int, effectiveURL: String, timings: FetchTimings) -> FetchFailure {
        let request = job.request
        let url = URLText.redacted(request.url)
        let host = URLText.hostAndPort(of: request.url)
        // libcurl 7.88 leaves "getpeername() failed with errno 107" in the error buffer of every UDP (TFTP)
        // transfer, whatever went wrong: its generic message for the code says more.
        let errorText = easy.errorText
        let detail = errorText.isEmpty || errorText.hasPrefix("getpeername()") ? Curl.message(code) : errorText
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST:
            return failure(
                .dns,
                timings: timings,
                "cannot resolve the host name \"\(URLText.host(of: request.url))\" of \(url) (\(detail)): check "
                    + "the server name and the DNS server"
            )
        case CURLE_COULDNT_RESOLVE_PROXY:
            return failure(
                .dns,
                timings: timings,
                "cannot resolve the proxy \(proxyName) for \(url) (\(detail)): check the proxy name "
                    + "and the DNS server"
            )
        case CURLE_COULDNT_CONNECT:
            let target = request.proxy != nil ? "the proxy \(proxyName)" : host
            return failure(
                .connect,
                timings: timings,
                "cannot connect to \(target) for \(url) (\(detail)): is the server running, listening on that "
                    + "port, and reachable from here?"
            )
        case CURLE_OPERATION_TIMEDOUT:
            if timings.connectUs == 0 && timings.firstByteUs == 0 {
                return failure(
                    .timeout,
                    timings: timings,
                    "\(host) did not accept a connection for \(url) within the time allowed (\(detail)): the "
                        + "server is unreachable or overloaded, or the connect timeout "
                        + "(\(request.connectTimeoutMs) ms) is too short"
                )
            }
            return failure(
                .timeout,
                timings: timings,
                "\(host) did not deliver \(url) within \(request.totalTimeoutMs) ms (\(detail)): the server or "
                    + "network is too slow, or the timeout is too short"
            )
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
            CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
            CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_CRL_BADFILE,
            CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
            CURLE_SSL_CLIENTCERT, CURLE_USE_SSL_FAILED:
            return tlsFailure(code, detail: detail, timings: timings)
        case CURLE_UNSUPPORTED_PROTOCOL:
            if redirectCount > 0 || effectiveURL != request.url {
                return failure(
                    .protocolRefused,
                    timings: timings,
                    "\(host) redirected \(url) to a refused scheme (\(detail)): redirects are followed only "
                        + "to http and https; fix the server's redirect"
                )
            }
            return failure(
                .protocolRefused,
                timings: timings,
                "\(url) uses a scheme this phone does not fetch (\(detail)): use http, https, tftp or ftp"
            )
        case CURLE_FILESIZE_EXCEEDED:
            return tooLarge(timings: timings, url: url, announced: true)
        case CURLE_WRITE_ERROR where exceededMaxBytes:
            return tooLarge(timings: timings, url: url, announced: false)
        case CURLE_TOO_MANY_REDIRECTS:
            return failure(
                .redirect,
                timings: timings,
                "\(url) redirected more than \(Self.maxRedirects) times (last to "
                    + "\(URLText.redacted(effectiveURL))): fix the redirect loop on \(host)"
            )
        case CURLE_LOGIN_DENIED:
            return failure(
                .auth,
                timings: timings,
                "\(host) refused the login for \(url) (\(detail)): check the user name and password"
            )
        case CURLE_REMOTE_FILE_NOT_FOUND, CURLE_TFTP_NOTFOUND:
            return failure(
                .notFound,
                timings: timings,
                "\(host) has no file at \(url) (\(detail)): check the path, the file name and its "
                    + "{MAC}/{MODEL} macros"
            )
        case CURLE_PARTIAL_FILE, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_SEND_ERROR:
            return failure(
                .transfer,
                timings: timings,
                "connection to \(host) closed mid-body while fetching \(url) (\(detail)): the server or "
                    + "the network dropped the transfer; it is retried at the next download"
            )
        default:
            return failure(
                .other,
                timings: timings,
                "fetching \(url) from \(host) failed: \(Curl.message(code))"
                    + (detail != Curl.message(code) ? " (\(detail))" : "")
            )
        }
    }

    private func tlsFailure(_ code: CURLcode, detail: String, timings: FetchTimings) -> FetchFailure {
        let request = job.request
        let url = URLText.redacted(request.url)
        let host = URLText.hostAndPort(of: request.url)
        let fix: String
        switch code {
        case CURLE_PEER_FAILED_VERIFICATION:
            if let source = extraRootsSource {
                fix =
                    "the server's certificate is neither signed by a root in \(source) nor by a system root, or "
                    + "does not name \(URLText.host(of: request.url)): check the certificate"
                    + (unreadableCAFile.map { "; the CA file \($0) could not be read" } ?? "")
            } else {
                fix =
                    "the server's certificate is not signed by a trusted root: add its root CA (extraCAFile, "
                    + "extraCAPEM, <Certs>) or, in a lab only, disable verification"
            }
        case CURLE_SSL_CACERT_BADFILE:
            if request.extraCAPEM?.isEmpty == false {
                fix = "the extra root certificates (\(extraRootsSource ?? "extraCAPEM")) hold no valid PEM certificate"
            } else {
                fix = "the CA file \(request.extraCAFile ?? "(system)") cannot be read or is not PEM"
            }
        default:
            fix = "check that \(host) speaks TLS on this port and that its certificate is valid"
        }
        return failure(.tls, timings: timings, "TLS with \(host) failed for \(url): \(detail); \(fix)")
    }

    /// Where the extra roots came from, for messages: the file, the in-memory PEM, or both.
    private var extraRootsSource: String? {
        let request = job.request
        let hasPEM = request.extraCAPEM?.isEmpty == false
        switch (request.extraCAFile, hasPEM) {
        case (let file?, true): return "\(file) and extraCAPEM"
        case (let file?, false): return file
        case (nil, true): return "extraCAPEM"
        case (nil, false): return nil
        }
    }

    /// The proxy as given, without any `user:password@`.
    private var proxyName: String { job.request.proxy.map(URLText.redacted) ?? "" }

    private func tooLarge(timings: FetchTimings, url: String, announced: Bool) -> FetchFailure {
        let limit = job.request.maxBytes
        let how = announced ? "announces more than" : "sent more than"
        return failure(
            .tooLarge,
            timings: timings,
            "\(url) \(how) the \(limit)-byte limit; the rest was not read: the server is sending the wrong "
                + "file, or the limit is too low"
        )
    }

    /// Builds the failure, making sure no password given for this request appears in the message.
    func failure(
        _ kind: FetchFailure.Kind,
        httpStatus: Int? = nil,
        timings: FetchTimings,
        _ message: String
    )
        -> FetchFailure
    {
        FetchFailure(
            kind: kind,
            httpStatus: httpStatus,
            message: Self.scrub(message, secrets: secrets),
            timings: timings
        )
    }

    private var secrets: [String] {
        var secrets: [String] = []
        if let password = job.request.password { secrets.append(password) }
        if let password = URLText.credentials(in: job.request.url)?.password { secrets.append(password) }
        if let password = job.request.proxyPassword { secrets.append(password) }
        if let password = job.request.proxy.flatMap({ URLText.credentials(in: $0)?.password }) {
            secrets.append(password)
        }
        return secrets
    }

    /// Replaces every occurrence of a secret with `***`. Messages only ever contain redacted URLs and
    /// libcurl's text, so this is a second line of defence; secrets shorter than 3 characters are not
    /// scrubbed (they would mangle every message and are no secret anyway).
    static func scrub(_ message: String, secrets: [String]) -> String {
        var message = message
        for secret in secrets where secret.count >= 3 {
            message = message.replacing(secret, with: "***")
        }
        return message
    }
}

extension FetchFailure {
    /// The URL's scheme is not one the phone fetches (checked before libcurl sees the URL).
    static func refusedScheme(_ scheme: String?, request: FetchRequest) -> FetchFailure {
        let url = URLText.redacted(request.url)
        let what = scheme.map { "scheme \"\($0)\"" } ?? "no scheme"
        return FetchFailure(
            kind: .protocolRefused,
            message: "\(url) has \(what): the phone fetches only http://, https://, tftp:// and ftp:// URLs"
        )
    }

    /// The transfer could not be set up (an option libcurl rejected, out of memory).
    static func setupFailed(_ detail: String, _ request: FetchRequest) -> FetchFailure {
        FetchFailure(kind: .other, message: "cannot start fetching \(URLText.redacted(request.url)): \(detail)")
    }
}
