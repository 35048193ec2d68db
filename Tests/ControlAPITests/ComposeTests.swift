import Foundation
import PhoneCore
import PhoneRuntime
import Testing
import VPhoneTesting

/// What can be tested of docker-compose.yml without a Docker engine: the file is valid, and its provisioning server
/// (docker/nginx/prov-locations.conf, run here in a real nginx) provisions the compose phones and the fleet with the
/// encrypted master file.
@Suite("docker-compose.yml")
struct ComposeTests {
    static let root = TestProfiles.repositoryRoot
    static let dockerCompose = findExecutable("docker-compose")
    static let openssl = findExecutable("openssl")
    /// The key in docker/prov's standard files; ConfigCom.cfg there is encrypted with it.
    static let key = "5a1e7c0d3b9f42e8a6c1d0f7b2e94c38"
    static let composePhones = ["0080F0A00001": "301", "0080F0A00002": "302", "0080F0A00003": "303"]

    @Test(
        .enabled(
            if: dockerCompose != nil,
            "docker-compose is not installed: apt-get install docker-compose (Debian) to validate docker-compose.yml"
        )
    )
    func composeFileIsValid() throws {
        let r = try run(Self.dockerCompose!, ["--profile", "fleet", "config"], cwd: Self.root)
        #expect(r.code == 0, "\(r.stderr)")
        let services = try run(Self.dockerCompose!, ["--profile", "fleet", "config", "--services"], cwd: Self.root)
        #expect(
            Set(services.stdout.split(separator: "\n").map(String.init)) == [
                "prov", "phone1", "phone2", "phone3", "fleet",
            ]
        )
        // three phones with different MACs, each with its own flash volume, against the prov service
        for (mac, _) in Self.composePhones { #expect(r.stdout.contains("VPHONE_MAC: \(mac)")) }
        #expect(r.stdout.components(separatedBy: "VPHONE_PROV_URL: http://prov:8780/").count == 4)
        #expect(
            r.stdout.contains("- ./examples/prov:/srv/prov/examples:ro")
                || r.stdout.contains("/examples/prov:/srv/prov/examples:ro")
        )
        // the fleet runs only in its profile
        #expect(r.stdout.contains("profiles:\n    - fleet"))
    }

    @Test(.enabled(if: openssl != nil, "openssl is not installed: apt-get install openssl"))
    func encryptedMasterIsTheExampleMasterUnderTheKeyOfTheStandardFiles() throws {
        let r = try run(
            Self.openssl!,
            [
                "enc", "-d", "-aes-128-cbc", "-a", "-md", "md5", "-pass", "pass:\(Self.key)",
                "-in", Self.root + "/docker/prov/ConfigCom.cfg",
            ]
        )
        #expect(r.code == 0, "\(r.stderr)")
        let example = try String(contentsOfFile: Self.root + "/examples/prov/ConfigCom.cfg", encoding: .utf8)
        #expect(r.stdout == example, "docker/prov/ConfigCom.cfg is stale: re-encrypt examples/prov/ConfigCom.cfg")
        for (mac, _) in Self.composePhones {
            let standard = try String(contentsOfFile: Self.root + "/docker/prov/Config\(mac).cfg", encoding: .utf8)
            #expect(standard.contains("<CFG_FILE_KEY>\(Self.key)</CFG_FILE_KEY>"))
        }
    }

    /// The compose server's own location rules in a real nginx, and phones booted against it as in compose.
    @Test func composeProvisioningServerProvisionsEveryPhoneWithTheEncryptedMaster() async throws {
        let locations = try String(contentsOfFile: Self.root + "/docker/nginx/prov-locations.conf", encoding: .utf8)
            .replacingOccurrences(of: "/srv/prov/compose", with: Self.root + "/docker/prov")
            .replacingOccurrences(of: "/srv/prov/examples", with: Self.root + "/examples/prov")
        let empty = try temporaryDirectory("vphone-compose-root")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let nginx = try NginxServer(root: empty, extraConfig: locations)
        defer { nginx.stop() }

        // the examples' URLs (http://127.0.0.1:8780/...) come out pointing at the host the phone asked for
        let initial = try await http("GET", nginx.baseURL + "/KX-UTG300.cfg")
        #expect(initial.status == 200)
        #expect(initial.text.contains(nginx.baseURL + "/Config{MAC}.cfg"))
        #expect(!initial.text.contains("8780"))

        for (mac, number) in Self.composePhones.sorted(by: { $0.key < $1.key }) + [("0080F0B00007", "400")] {
            let (phone, report) = try await BootedPhone.boot(mac: mac, provURL: nginx.baseURL + "/")
            let status = await phone.runtime.status()
            let config = await phone.runtime.effectiveConfig()
            let events = try await phone.runtime.events()
            await phone.stop()
            #expect(report?.outcome == .provisioned, "\(mac): \(String(describing: report))")
            #expect(FileKind.allCases.allSatisfy { report?.files[$0]?.outcome == .downloaded }, "\(mac)")
            #expect(status.keyPresent, "\(mac): the standard file's key was stored")
            #expect(config.first { $0.name == "PHONE_NUMBER_1" }?.value == number, "\(mac)")
            // the master file came encrypted and was decrypted with that key
            #expect(config.first { $0.name == "NTP_ADDR" }?.value == "pool.ntp.org", "\(mac)")
            #expect(events.contains { $0.fields["file"] == "master" && $0.fields["encrypted"] == "yes" }, "\(mac)")
            // A static server cannot delete the plain standard file after the first download (guide 2.6.1), and the
            // product file stays plain: the phone says so, and it is the only warning.
            let warnings = events.filter { $0.level == .warning || $0.level == .error }
            #expect(
                warnings.allSatisfy { $0.kind == "key-exposed" && $0.fields["file"] == "product" },
                "\(mac): \(warnings)"
            )
        }
    }
}
