import Foundation
import Testing
import VPhoneTesting

/// `vphone serve`, `vphone testserver` and `vphone demo` as a user runs them: real processes, real sockets.
@Suite struct ServeAndDemoTests {
    @Test func aPhoneBootsAgainstTheBuiltInTreeServedByVphoneServe() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-serve")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let served = try await TestServerProcess("serve", tree: nil, dir: dir)
        let server = served.process
        let port = served.port
        defer { server.signal(SIGKILL) }
        let flash = dir + "/phone.flash"
        let boot = try vphone(
            ["boot", "--mac", mac, "--flash", flash, "--prov-url", "http://127.0.0.1:\(port)/", "--once"],
            cwd: dir
        )
        #expect(boot.code == 0, "\(boot.stderr)")
        let config = try configShow(flash: flash, cwd: dir)
        #expect(config["SIP_RGSTR_ADDR_1"]?.value == "pbx.example.net")
        #expect(config["SIP_RGSTR_ADDR_1"]?.source == "product")
        // The built-in tree's URLs name the server it is served from.
        #expect(config["CFG_MASTER_FILE_PATH"]?.value == "http://127.0.0.1:\(port)/ConfigCom.cfg")
        server.signal(SIGTERM)
        let stopped = server.wait()
        #expect(stopped.code == 0, "\(stopped.stderr)")
        // The access log: one line per request, with the phone's User-Agent.
        let lines = stopped.stdout.split(separator: "\n")
        #expect(lines.count == 4, "\(stopped.stdout)")
        #expect(lines.first?.hasPrefix("GET /KX-UTG300.cfg 200 ") == true)
        #expect(lines.allSatisfy { $0.contains("\"Panasonic_KX-UTG300/03.210 (0080f0c571eb)\"") })
    }

    @Test func aTestserverRuleMakesTheBootFallBackAndTheFlashKeepsItsCopy() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-testserver")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flash = dir + "/phone.flash"
        let healthy = try await TestServerProcess("serve", tree: nil, dir: dir, extra: ["--quiet"])
        let (good, goodPort) = (healthy.process, healthy.port)
        let first = try vphone(
            ["boot", "--mac", mac, "--flash", flash, "--prov-url", "http://127.0.0.1:\(goodPort)/", "--once"],
            cwd: dir
        )
        good.signal(SIGTERM)
        _ = good.wait()
        #expect(first.code == 0, "\(first.stderr)")
        // The same tree, now misbehaving on the master file, on another port: the initial file saved in flash names
        // the first port, so give the phone the new server as its provisioning URL and let the initial file point on.
        let broken = try await TestServerProcess(
            tree: nil,
            dir: dir,
            extra: ["--rule", "/ConfigCom.cfg=close-mid-body"]
        )
        let (bad, badPort) = (broken.process, broken.port)
        defer { bad.signal(SIGKILL) }
        let second = try vphone(
            ["boot", "--flash", flash, "--prov-url", "http://127.0.0.1:\(badPort)/", "--once"],
            cwd: dir
        )
        #expect(second.code == 10, "\(second.stderr)")
        #expect(second.stderr.contains("closed mid-body"), "\(second.stderr)")
        let config = try configShow(flash: flash, cwd: dir)
        #expect(config["NTP_ADDR"]?.value == "pool.ntp.org")  // from the saved master file
        #expect(config["NTP_ADDR"]?.source == "master")
        bad.signal(SIGTERM)
        let log = bad.wait().stdout
        #expect(
            log.contains("GET /ConfigCom.cfg 200 182 ") && log.contains("rule=/ConfigCom.cfg=close-mid-body"),
            "\(log)"
        )
    }

    @Test func demoNeedsNothingElse() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-demo")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // No profile on disk, no server: the binary carries both.
        let r = try vphone(["demo", "--flash", dir + "/demo.flash"], cwd: dir, environment: ["VPHONE_PROFILE": ""])
        #expect(r.code == 0, "\(r.stderr)")
        for expected in [
            "GET /Config0080F0C571EB.cfg 200", "SIP_RGSTR_ADDR_1        product   \"pbx.example.net\"",
            "── outcome provisioned", "the flash image stays at \(dir)/demo.flash",
        ] {
            #expect(r.stdout.contains(expected), "missing \(expected) in:\n\(r.stdout)")
        }
        let broken = try vphone(["demo", "--rule", "/ConfigCom.cfg=503"], cwd: dir)
        #expect(broken.code == 10, "\(broken.stderr)")
        #expect(broken.stdout.contains("GET /ConfigCom.cfg 503"), "\(broken.stdout)")
    }

    @Test func badServerCommandLinesSayWhatIsWrong() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-serve-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (args, needle) in [
            (["serve", dir + "/nope"], "no such directory"),
            (["testserver", "--rule", "/x.cfg=teapot"], "unknown behaviour"),
            // Numbers past what the server can use crashed it at startup (trickle) or at the first request (stall).
            (["testserver", "--rule", "/x=trickle:1e30"], "\"/x=trickle:1e30\": trickle:1e30 is out of range"),
            (["demo", "--rule", "/KX*=trickle:1e30"], "trickle:1e30 is out of range; give a whole number"),
            (["demo", "--rule", "/KX*=stall:2e10"], "stall:2e10 is out of range; give the seconds to stall"),
            (["testserver", "--rule", "x.cfg=404"], "must start with /"),
            (["serve", "--port", "70000"], "expected a TCP port"),
            (["serve", "--bind", "not-an-address"], "not an IPv4 or IPv6 address"),
            (["demo", "--mac", "12"], "expected 12 hex digits"),
        ] {
            let r = try vphone(args, cwd: dir)
            #expect(r.code == 64, "\(args): \(r.code) \(r.stderr)")
            #expect(r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
    }
}
