import Foundation
import PhoneCore
import PhoneRuntime

/// Who may use the control API: nobody needs a password, a fixed admin password, or the phone's own
/// `ADMIN_ID`/`ADMIN_PASS` as its web UI asks for them.
///
/// Credentials travel as HTTP Basic (RFC 7617) with the user `admin`; a missing or wrong password gets
/// `401` with `WWW-Authenticate: Basic realm="<MODEL>"`. `GET /healthz` never asks (container health checks).
/// Basic sends the password in clear: keep the API on 127.0.0.1 (the default) or a private network.
///
/// ```swift
/// let auth = try ControlAuth(password: nil, passwordFile: "/run/secrets/vphone-admin")  // .password("...")
/// ```
public enum ControlAuth: Sendable, Equatable {
    /// Every request is served (the default; bind to 127.0.0.1).
    case none
    /// User `user` (normally `admin`) with this password.
    case password(String, user: String = "admin")
    /// The phone's own effective `ADMIN_ID` and `ADMIN_PASS`, read at each request: provisioning a new
    /// `ADMIN_PASS` changes the password, as on the real phone.
    case phone

    /// The admin password from a command-line value or a file (its first line; Docker secrets end with a newline).
    ///
    /// - Returns: `.none` when neither is given.
    /// - Throws: `ControlServerError` when both are given, the file cannot be read, or the password is empty.
    public init(password: String?, passwordFile: String?) throws(ControlServerError) {
        switch (password, passwordFile) {
        case (nil, nil):
            self = .none
        case (.some, .some):
            throw ControlServerError("--admin-password and --admin-password-file exclude each other: give one")
        case (.some(let pw), nil):
            guard !pw.isEmpty else {
                throw ControlServerError("--admin-password is empty: give a password or drop the flag")
            }
            self = .password(pw)
        case (nil, .some(let path)):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ControlServerError("--admin-password-file \(path): no such readable file")
            }
            let text = String(decoding: data, as: UTF8.self)
            let line = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first.map(String.init)
            guard let line, !line.isEmpty else {
                throw ControlServerError("--admin-password-file \(path): the first line is empty")
            }
            self = .password(line)
        }
    }

    /// Whether `authorization` (the request's `Authorization` header) carries the right credentials.
    func admits(_ authorization: String?, runtime: PhoneRuntime) async -> Bool {
        let expected: (user: String, password: String)
        switch self {
        case .none:
            return true
        case .password(let pw, let user):
            expected = (user, pw)
        case .phone:
            let config = await runtime.effectiveConfig()
            let user = config.first { $0.name == "ADMIN_ID" }?.value ?? "admin"
            let pw = config.first { $0.name == "ADMIN_PASS" }?.value ?? ""
            expected = (user.isEmpty ? "admin" : user, pw)
        }
        guard let given = Self.basicCredentials(authorization) else { return false }
        // Both compared in full, always: the time taken does not tell which part was wrong, or how much of it.
        let userOK = Self.constantTimeEqual(Array(given.user.utf8), Array(expected.user.utf8))
        let passwordOK = Self.constantTimeEqual(Array(given.password.utf8), Array(expected.password.utf8))
        return userOK && passwordOK
    }

    /// `Basic dXNlcjpwYXNz` -> ("user", "pass"); nil for another scheme or a malformed value.
    static func basicCredentials(_ header: String?) -> (user: String, password: String)? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":")
        else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
