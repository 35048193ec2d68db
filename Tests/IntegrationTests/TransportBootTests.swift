import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// The transports a real phone speaks, end to end with `vphone boot`: TFTP (tftpd-hpa), FTP (vsftpd) and HTTP Digest
/// authentication (Apache with mod_auth_digest).
@Suite("vphone boot over TFTP, FTP and Digest", .serialized)
struct TransportBootTests {
    /// The example tree in `dir`, with the device file URLs rewritten to `base`.
    func tree(in dir: String, base: String, initialDevice: String = "") throws {
        let examples = TestProfiles.repositoryRoot + "/examples/prov"
        for name in try FileManager.default.contentsOfDirectory(atPath: examples) {
            var text = try String(contentsOfFile: examples + "/" + name, encoding: .utf8)
            text = text.replacingOccurrences(of: "http://127.0.0.1:8780", with: base)
            if name == "KX-UTG300.cfg" && !initialDevice.isEmpty {
                text = text.replacingOccurrences(
                    of: "</Initial>",
                    with: "</Initial>\n<Device>\(initialDevice)</Device>"
                )
            }
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/" + name)
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir)
    }

    @Test func dhcpOption66SchemelessBootsOverTFTP() throws {
        let root = try makeTemporaryDirectory(prefix: "vphone-tftp-root")
        let server = try TFTPServer(root: root)
        try tree(in: root, base: server.baseURL)
        let dir = try makeTemporaryDirectory(prefix: "vphone-tftp")
        // A scheme-less option 66 is tried as tftp first (spec §3).
        let r = try vphone(["boot", "--mac", mac, "--dhcp-option66", "127.0.0.1:\(server.port)", "--once"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("tftp://127.0.0.1:\(server.port)/KX-UTG300.cfg"))
        let config = try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)
        #expect(config["SIP_AUTHID_1"]! == ("201", "standard"))
        #expect(config["NTP_ADDR"]! == ("pool.ntp.org", "master"))
    }

    @Test func ftpWithCredentialsInTheURL() throws {
        let root = try makeTemporaryDirectory(prefix: "vphone-ftp-root")
        let server = try FTPServer(root: root, user: "prov", password: "ftp-secret")
        try tree(in: root, base: "ftp://prov:ftp-secret@127.0.0.1:\(server.port)")
        let dir = try makeTemporaryDirectory(prefix: "vphone-ftp")
        let r = try vphone(
            ["boot", "--mac", mac, "--prov-url", "ftp://prov:ftp-secret@127.0.0.1:\(server.port)/", "--once"],
            cwd: dir
        )
        #expect(r.code == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("ftp-secret"))
        #expect(try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)["SIP_AUTHID_1"]! == ("201", "standard"))
        // A wrong password is an auth failure, never a crash or a silent success.
        let dir2 = try makeTemporaryDirectory(prefix: "vphone-ftp")
        let bad = try vphone(
            ["boot", "--mac", mac, "--prov-url", "ftp://prov:wrong@127.0.0.1:\(server.port)/", "--once"],
            cwd: dir2
        )
        #expect(bad.code == 11)
        #expect(bad.stderr.contains("class=auth"))
    }

    @Test func digestAuthenticationWithHTTPAuthCredentials() throws {
        let root = try makeTemporaryDirectory(prefix: "vphone-apache-root")
        let server = try ApacheServer(root: root, digestUser: "phone", digestPassword: "digest-secret", realm: "prov")
        // The initial file is open; the device files sit behind Digest. The initial file's own <Device> section
        // gives HTTP_AUTH_ID/PASSWORD, which the phone uses for every file after it (spec §3).
        try tree(
            in: root,
            base: server.digestBaseURL,
            initialDevice: "<HTTP_AUTH_ID>phone</HTTP_AUTH_ID><HTTP_AUTH_PASSWORD>digest-secret</HTTP_AUTH_PASSWORD>"
        )
        let dir = try makeTemporaryDirectory(prefix: "vphone-digest")
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.baseURL + "/", "--once"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("digest-secret"))
        let config = try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)
        #expect(config["SIP_AUTHID_1"]! == ("201", "standard"))
        #expect(config["HTTP_AUTH_PASSWORD"]! == ("********", "initial"))

        // Wrong credentials: a 401 after credentials is its own failure class.
        try tree(
            in: root,
            base: server.digestBaseURL,
            initialDevice: "<HTTP_AUTH_ID>phone</HTTP_AUTH_ID><HTTP_AUTH_PASSWORD>nope</HTTP_AUTH_PASSWORD>"
        )
        let dir2 = try makeTemporaryDirectory(prefix: "vphone-digest")
        let bad = try vphone(["boot", "--mac", mac, "--prov-url", server.baseURL + "/", "--once"], cwd: dir2)
        #expect(bad.code == 10)
        #expect(bad.stderr.contains("class=auth"))
    }
}
