import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// Spec §5 end to end: the test plays the server admin with the real `openssl` command and a real nginx.
@Suite("Secure provisioning against nginx", .serialized)
struct SecureBootTests {
    static let key1 = "Xk3b9TqP0vLmZ2sR8wYc4NdH6jFa1Ue7"
    static let key2 = "Q9w8E7r6T5y4U3i2O1p0AaSsDdFfGgHh"

    /// `openssl enc -aes-BITS-cbc -a -salt [-md MD] -pass pass:KEY`, the guide's command.
    static func openssl(_ text: String, key: String, bits: Int = 256, md: String? = "md5") throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments =
            ["enc", "-aes-\(bits)-cbc", "-a", "-salt"] + (md.map { ["-md", $0] } ?? []) + ["-pass", "pass:\(key)"]
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle.nullDevice
        try p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestFailure("openssl enc failed") }
        return String(decoding: data, as: UTF8.self)
    }

    /// The example tree with encrypted product and master files and a key in the plain standard file.
    func encryptedServer(key: String = key1, bits: Int = 256) throws -> (ProvServer, product: String, master: String) {
        let server = try ProvServer()
        let initial = try String(contentsOfFile: server.root + "/KX-UTG300.cfg", encoding: .utf8)
        try server.write(
            "KX-UTG300.cfg",
            initial.replacingOccurrences(of: "Config{MODEL}.cfg", with: "Config{MODEL}.cfg.enc")
                .replacingOccurrences(of: "ConfigCom.cfg", with: "ConfigCom.cfg.enc")
        )
        let product = try String(contentsOfFile: server.root + "/ConfigKX-UTG300.cfg", encoding: .utf8)
        let master = try String(contentsOfFile: server.root + "/ConfigCom.cfg", encoding: .utf8)
        try server.write("ConfigKX-UTG300.cfg.enc", try Self.openssl(product, key: key, bits: bits))
        try server.write("ConfigCom.cfg.enc", try Self.openssl(master, key: key, bits: bits))
        try server.remove("ConfigKX-UTG300.cfg")
        try server.remove("ConfigCom.cfg")
        try addKey(key, bits: bits, to: server)
        return (server, product, master)
    }

    func addKey(_ key: String, bits: Int, to server: ProvServer) throws {
        let std = try String(
            contentsOfFile: TestProfiles.repositoryRoot + "/examples/prov/Config0080F0C571EB.cfg",
            encoding: .utf8
        )
        try server.write(
            "Config0080F0C571EB.cfg",
            std.replacingOccurrences(
                of: "<Device>",
                with: "<Device>\n<System><Prov><CFG_FILE_KEY>\(key)</CFG_FILE_KEY>"
                    + "<CFG_FILE_KEY_LENGTH>\(bits)</CFG_FILE_KEY_LENGTH></Prov></System>"
            )
        )
    }

    @Test func theWholeKeyLifecycle() throws {
        let (server, product, master) = try encryptedServer()
        let dir = try makeTemporaryDirectory(prefix: "vphone-secure")
        let boot = ["boot", "--mac", mac, "--prov-url", server.base, "--once"]
        let flash = dir + "/Storage/\(mac).flash"

        // 1. The plain standard file delivers the key; it already decrypts this cycle's product and master files.
        var r = try vphone(boot, cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        var config = try configShow(flash: flash, cwd: dir)
        #expect(config["SIP_RGSTR_ADDR_1"]! == ("pbx.example.net", "product"))
        #expect(config["NTP_ADDR"]! == ("pool.ntp.org", "master"))
        #expect(config["CFG_FILE_KEY"]! == ("********", "standard"))
        #expect(!r.stderr.contains(Self.key1))

        // 2. The admin deletes the plain standard file and serves it encrypted at the same path.
        let std = try String(contentsOfFile: server.root + "/Config0080F0C571EB.cfg", encoding: .utf8)
        try server.write(
            "Config0080F0C571EB.cfg",
            try Self.openssl(std.replacingOccurrences(of: Self.key1, with: ""), key: Self.key1)
        )
        r = try vphone(boot, cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("decrypted"))
        config = try configShow(flash: flash, cwd: dir)
        #expect(config["SIP_AUTHID_1"]! == ("201", "standard"))
        #expect(config["CFG_FILE_KEY"]! == ("********", "standard"))  // still held

        // 3. Key rotation: a new plain standard file with a new key, files re-encrypted with it.
        try addKey(Self.key2, bits: 256, to: server)
        try server.write("ConfigKX-UTG300.cfg.enc", try Self.openssl(product, key: Self.key2))
        try server.write(
            "ConfigCom.cfg.enc",
            try Self.openssl(master.replacingOccurrences(of: "pool.ntp.org", with: "ntp.rotated"), key: Self.key2)
        )
        r = try vphone(boot, cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("key rotation"))
        config = try configShow(flash: flash, cwd: dir)
        #expect(config["NTP_ADDR"]! == ("ntp.rotated", "master"))
        let revealed = try vphone(["config", "show", "--flash", flash, "--json", "--reveal-secrets"], cwd: dir)
        #expect(revealed.stdout.contains(Self.key2))

        // 4. The server keeps serving the plain standard file: a conformance warning.
        r = try vphone(boot, cwd: dir)
        #expect(r.code == 0)
        #expect(r.stderr.contains("key exposed in clear"))

        // The key never reached the log, the event log or a default export.
        let events = try vphone(["events", flash, "--json"], cwd: dir).stdout
        #expect(!events.contains(Self.key1) && !events.contains(Self.key2))
        let export = try vphone(["flash", "export", flash, "--to", "-"], cwd: dir).stdout
        #expect(!export.contains(Self.key2))

        // 5. A factory reset clears the key.
        #expect(try vphone(["factory-reset", "--flash", flash], cwd: dir).code == 0)
        config = try configShow(flash: flash, cwd: dir)
        #expect(config["CFG_FILE_KEY"]! == ("", "factory"))
    }

    @Test func modernOpenSSLDefaultsAreDiagnosed() throws {
        let (server, _, master) = try encryptedServer()
        let dir = try makeTemporaryDirectory(prefix: "vphone-secure")
        let boot = ["boot", "--mac", mac, "--prov-url", server.base, "--once"]
        #expect(try vphone(boot, cwd: dir).code == 0)
        // The guide's command on OpenSSL >= 1.1 (no -md): SHA-256 key derivation.
        try server.write("ConfigCom.cfg.enc", try Self.openssl(master, key: Self.key1, md: nil))
        let r = try vphone(boot, cwd: dir)
        #expect(r.code == 10, "\(r.stderr)")
        #expect(r.stderr.contains("SHA-256 key derivation"))
        #expect(r.stderr.contains("re-encrypt with -md md5"))
        let config = try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)
        #expect(config["NTP_ADDR"]! == ("pool.ntp.org", "master"))  // the saved copy stands in
    }

    @Test func encryptedFileWithNoKeyStored() throws {
        let (server, _, _) = try encryptedServer()
        let std = try String(
            contentsOfFile: TestProfiles.repositoryRoot + "/examples/prov/Config0080F0C571EB.cfg",
            encoding: .utf8
        )
        try server.write("Config0080F0C571EB.cfg", std)  // no key
        let dir = try makeTemporaryDirectory(prefix: "vphone-secure")
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once"], cwd: dir)
        #expect(r.code == 10)
        #expect(r.stderr.contains("no key"))
    }

    @Test func httpsVerifiedWithTheRootFromCerts() throws {
        let server = try ProvServer(tls: true)
        let ca = try #require(server.nginx.caCertPath)
        // The initial file comes over plain HTTP and names the root certificate; the device files are on HTTPS.
        try server.write("ca.pem", try String(contentsOfFile: ca, encoding: .utf8))
        let https = try #require(server.nginx.tlsBaseURL)
        let initial = try String(contentsOfFile: server.root + "/KX-UTG300.cfg", encoding: .utf8)
        let withCerts = initial.replacingOccurrences(
            of: "</CfgFiles>",
            with: "</CfgFiles>\n<Certs><CFG_ROOT_CERTIFICATE_PATH1>\(server.nginx.baseURL)/ca.pem"
                + "</CFG_ROOT_CERTIFICATE_PATH1></Certs>"
        )
        try server.write("KX-UTG300.cfg", withCerts)
        let dir = try makeTemporaryDirectory(prefix: "vphone-secure")
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.nginx.baseURL, "--once"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("root certificate 1 downloaded"))
        #expect(try configShow(flash: dir + "/Storage/\(mac).flash", cwd: dir)["SIP_AUTHID_1"]! == ("201", "standard"))
        #expect(https.hasPrefix("https://"))

        // Without the root, the same HTTPS server is a TLS failure, never silently accepted.
        let dir2 = try makeTemporaryDirectory(prefix: "vphone-secure")
        try server.write("KX-UTG300.cfg", initial)
        let untrusted = try vphone(["boot", "--mac", mac, "--prov-url", server.nginx.baseURL, "--once"], cwd: dir2)
        #expect(untrusted.code == 10, "\(untrusted.stderr)")
        #expect(untrusted.stderr.contains("class=tls"))
    }

    @Test func insecureSaysSoLoudly() throws {
        let server = try ProvServer(tls: true)
        let dir = try makeTemporaryDirectory(prefix: "vphone-secure")
        let r = try vphone(["boot", "--mac", mac, "--prov-url", server.base, "--once", "--insecure"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("TLS VERIFICATION IS OFF"))
    }

    @Test func cryptIsByteCompatibleWithOpenSSLBothWays() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-secure")
        let plain = "<PANASIPPhoneConfig>\r\n<Device><NTP_ADDR>x</NTP_ADDR></Device>\r\n</PANASIPPhoneConfig>\r\n"
        for bits in [128, 192, 256] {
            for md in ["md5", "sha256"] {
                try Self.openssl(plain, key: Self.key1, bits: bits, md: md)
                    .write(toFile: dir + "/in.enc", atomically: true, encoding: .utf8)
                let d = try vphone(
                    ["crypt", "decrypt", "--key", Self.key1, "--bits", "\(bits)", "--md", md, dir + "/in.enc"],
                    cwd: dir
                )
                #expect(d.code == 0, "\(d.stderr)")
                #expect(d.stdout == plain)
                try plain.write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
                let e = try vphone(
                    ["crypt", "encrypt", "--key", Self.key1, "--bits", "\(bits)", "--md", md, dir + "/in.txt"],
                    cwd: dir
                )
                #expect(e.code == 0)
                try e.stdout.write(toFile: dir + "/out.enc", atomically: true, encoding: .utf8)
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
                p.arguments = [
                    "enc", "-d", "-aes-\(bits)-cbc", "-a", "-md", md, "-pass", "pass:\(Self.key1)", "-in",
                    dir + "/out.enc",
                ]
                let out = Pipe()
                p.standardOutput = out
                p.standardError = FileHandle.nullDevice
                try p.run()
                let data = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                #expect(String(decoding: data, as: UTF8.self) == plain)
            }
        }
        let key = try vphone(["crypt", "keygen"], cwd: dir).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.count == 32)
    }
}
