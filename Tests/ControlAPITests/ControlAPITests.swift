import ControlAPI
import Flash
import Foundation
import PhoneCore
import PhoneRuntime
import Testing
import VPhoneTesting

/// The control API end to end: a phone booted against a real nginx serving examples/prov, its API on a real
/// socket, and a client (curl) that shares no code with the server.
@Suite("control API over HTTP")
struct ControlAPITests {
    // MARK: - Reading

    @Test func statusReportsIdentityOutcomePerFileAndTheNextTimer() async throws {
        try await withPhone { phone in
            let r = try await http("GET", phone.base + "/status")
            #expect(r.status == 200)
            #expect(r.header("Content-Type") == "application/json; charset=utf-8")
            let s = r.object
            #expect(s["state"] as? String == "idle")
            #expect(s["mac"] as? String == testMAC)
            #expect(s["model"] as? String == "KX-UTG300")
            #expect(s["firmware"] as? String == "03.210")
            #expect(s["boot_count"] as? Int == 1)
            #expect((s["ip"] as? String)?.isEmpty == false)
            #expect(s["key_present"] as? Bool == false)
            let files = s["files"] as? [String: [String: Any]] ?? [:]
            #expect(Set(files.keys) == ["initial", "standard", "product", "master"])
            #expect(files.values.allSatisfy { $0["outcome"] as? String == "downloaded" })
            #expect(files["standard"]?["url"] as? String == phone.prov.nginx.baseURL + "/Config\(testMAC).cfg")
            #expect(files["master"]?["at"] is String)
            let last = s["last_cycle"] as? [String: Any] ?? [:]
            #expect(last["outcome"] as? String == "provisioned")
            #expect(last["exit_code"] as? Int == 0)
            // ConfigCom.cfg sets CFG_CYCLIC=Y, every 1440 minutes
            let next = s["next_timer"] as? [String: Any] ?? [:]
            #expect(next["kind"] as? String == "cyclic")
            #expect((s["timers"] as? [String: String])?["cyclic"] == next["at"] as? String)
        }
    }

    /// `vphone config set` beside the running phone (another connection to its image): the next cycle merges that
    /// edit, as it merges the API's own, instead of writing the provisioned value over it.
    @Test func aLocalEditMadeByAnotherProcessIsInForceFromTheNextCycle() async throws {
        try await withPhone { phone in
            let path = phone.phone.directory + "/\(testMAC).flash"
            let other = try FlashStore.open(at: path)
            let changes = try LocalEditRule.apply(
                name: "NTP_ADDR",
                value: "ntp.edited.elsewhere",
                snapshot: try other.load(),
                profile: TestProfiles.utg300,
                at: PhoneTime(millisecondsSinceEpoch: 1_800_000_000_000)
            )
            try other.apply(changes)
            other.close()
            let resync = try await http("POST", phone.base + "/resync")
            #expect(resync.status == 200)
            let c = try await http("GET", phone.base + "/config").object as? [String: [String: String]] ?? [:]
            #expect(c["NTP_ADDR"] == ["value": "ntp.edited.elsewhere", "source": "local"])
            let after = try FlashStore.open(at: path, readOnly: true)
            defer { after.close() }
            let saved = try after.load()
            #expect(saved.parameters["NTP_ADDR"]?.value == "ntp.edited.elsewhere")
            #expect(saved.localEdits["NTP_ADDR"]?.value == "ntp.edited.elsewhere")
        }
    }

    @Test func configShowsSourcesPermsAndMasksSecrets() async throws {
        try await withPhone { phone in
            let r = try await http("GET", phone.base + "/config")
            #expect(r.status == 200)
            let c = r.object as? [String: [String: String]] ?? [:]
            #expect(c["SIP_AUTHID_1"] == ["value": "201", "source": "standard", "perm": "R"])
            #expect(c["SIP_PASS_1"] == ["value": "********", "source": "standard", "access": "A"])
            #expect(c["NTP_ADDR"] == ["value": "pool.ntp.org", "source": "master"])
            #expect(c["SIP_RGSTR_ADDR_1"]?["source"] == "product")
            #expect(c["SIP_RGSTR_PORT_1"] == ["value": "5060", "source": "factory"])
            #expect(c["ADMIN_PASS"]?["value"] == "********")  // a factory secret is masked too
            #expect(!r.text.contains("s3cret") && !r.text.contains("adminpass"))
            // deterministic: the same bytes twice, keys sorted
            let again = try await http("GET", phone.base + "/config")
            #expect(again.body == r.body)
            let keys = r.text.split(separator: "\n").filter { $0.hasPrefix("  \"") }
            #expect(keys.first == "  \"ADMIN_ID\" : {")  // sorted as Foundation sorts (numbers by value)
            #expect(keys.last == "  \"USR_PROV_SVR_URL\" : {")

            let changed = try await http("GET", phone.base + "/config?changed=1").object
            #expect(changed["NTP_ADDR"] != nil)
            #expect(changed["SIP_RGSTR_PORT_1"] == nil)

            let one = try await http("GET", phone.base + "/config/NTP_ADDR")
            #expect(one.status == 200)
            #expect(
                one.object as? [String: String] == ["name": "NTP_ADDR", "value": "pool.ntp.org", "source": "master"]
            )
            let missing = try await http("GET", phone.base + "/config/NO_SUCH_THING")
            #expect(missing.status == 404)
            #expect(missing.object["error"] as? String == "unknown_parameter")
        }
    }

    @Test func eventsOldestFirstWithALimit() async throws {
        try await withPhone { phone in
            let all = try await http("GET", phone.base + "/events")
            #expect(all.status == 200)
            let events = all.array
            #expect(events.count > 5)
            #expect(events.allSatisfy { $0["time"] is String && $0["boot"] as? Int == 1 && $0["message"] is String })
            #expect(events.contains { $0["kind"] as? String == "apply" })
            let last3 = try await http("GET", phone.base + "/events?limit=3").array
            #expect(last3.count == 3)
            #expect(last3.map { $0["message"] as? String } == events.suffix(3).map { $0["message"] as? String })
            let bad = try await http("GET", phone.base + "/events?limit=many")
            #expect(bad.status == 400)
            #expect(bad.object["error"] as? String == "bad_request")
            #expect((bad.object["message"] as? String)?.contains("limit=many") == true)
        }
    }

    @Test func healthzIsOkWhileRunningAnd503OnceStopped() async throws {
        try await withPhone { phone in
            let ok = try await http("GET", phone.base + "/healthz")
            #expect(ok.status == 200)
            #expect(ok.text == "ok\n")
            #expect(ok.header("Content-Type") == "text/plain; charset=utf-8")
            await phone.runtime.shutdown()
            let down = try await http("GET", phone.base + "/healthz")
            #expect(down.status == 503)
            #expect(down.text == "stopped\n")
            // a stopped phone refuses actions, with a reason
            let resync = try await http("POST", phone.base + "/resync")
            #expect(resync.status == 503)
            #expect(resync.object["error"] as? String == "stopped")
            let edit = try await http("PUT", phone.base + "/config/NTP_ADDR", body: #"{"value": "x"}"#)
            #expect(edit.status == 503)
            #expect(edit.object["error"] as? String == "stopped")
        }
    }

    @Test func statusPageShowsThePhoneAndEscapesEverything() async throws {
        try await withPhone { phone in
            let hostile = "<script>alert('x')</script> & \"quoted\""
            let edit = try await http(
                "PUT",
                phone.base + "/config/DISPLAY_NAME_1",
                body: try String(decoding: JSONSerialization.data(withJSONObject: ["value": hostile]), as: UTF8.self)
            )
            #expect(edit.status == 200)
            let page = try await http("GET", phone.base + "/")
            #expect(page.status == 200)
            #expect(page.header("Content-Type") == "text/html; charset=utf-8")
            #expect(page.header("Content-Security-Policy")?.contains("default-src 'none'") == true)
            let html = page.text
            #expect(html.hasPrefix("<!DOCTYPE html>"))
            #expect(html.contains("<span class=\"mono\" id=\"mac\">\(testMAC)</span>"))
            #expect(html.contains("<title>KX-UTG300 \(testMAC) - Web User Interface</title>"))
            #expect(html.contains("pool.ntp.org"))
            #expect(html.contains(phone.prov.nginx.baseURL + "/ConfigCom.cfg"))
            #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"))
            #expect(!html.contains("<script"))
            #expect(!html.contains("s3cret"))  // SIP_PASS_1 is masked on the page too
        }
    }

    // MARK: - Acting

    @Test func resyncWaitsForTheCycleAndReturnsItsOutcome() async throws {
        try await withPhone { phone in
            let before = try phone.prov.requestCount()
            let r = try await http("POST", phone.base + "/resync")
            #expect(r.status == 200)
            let cycle = r.object
            #expect(cycle["outcome"] as? String == "provisioned")
            #expect(cycle["exit_code"] as? Int == 0)
            #expect((cycle["trigger"] as? String)?.isEmpty == false)
            #expect((cycle["files"] as? [String: Any])?.count == 4)
            #expect(try phone.prov.nginx.accessLog(atLeast: before + 4).count == before + 4)
            // a file that now fails falls back to its saved copy: outcome and exit code say so
            try FileManager.default.removeItem(atPath: phone.prov.root + "/ConfigKX-UTG300.cfg")
            let fell = try await http("POST", phone.base + "/resync").object
            #expect(fell["outcome"] as? String == "fell_back")
            #expect(fell["exit_code"] as? Int == 10)
            let product = (fell["files"] as? [String: [String: Any]])?["product"] ?? [:]
            #expect(product["outcome"] as? String == "fell_back")
            #expect((product["reason"] as? String)?.contains("404") == true)
            let status = try await http("GET", phone.base + "/status").object
            #expect((status["last_cycle"] as? [String: Any])?["outcome"] as? String == "fell_back")
        }
    }

    @Test func rebootCountsABootAndProvisionsAgain() async throws {
        try await withPhone { phone in
            let r = try await http("POST", phone.base + "/reboot")
            #expect(r.status == 200)
            #expect(r.object["outcome"] as? String == "provisioned")
            let status = try await http("GET", phone.base + "/status").object
            #expect(status["boot_count"] as? Int == 2)
            #expect(status["state"] as? String == "idle")
        }
    }

    @Test func localEditThenFactoryResetClearsIt() async throws {
        try await withPhone { phone in
            let edit = try await http("PUT", phone.base + "/config/NTP_ADDR", body: #"{"value": "ntp.local"}"#)
            #expect(edit.status == 200)
            #expect(edit.object as? [String: String] == ["name": "NTP_ADDR", "value": "ntp.local", "source": "local"])
            let config = try await http("GET", phone.base + "/config").object as? [String: [String: String]] ?? [:]
            #expect(config["NTP_ADDR"] == ["value": "ntp.local", "source": "local"])
            // the edit is in the flash event log
            let events = try await http("GET", phone.base + "/events?limit=1").array
            #expect(events.first?["kind"] as? String == "local-edit")
            // a secret edit is answered masked
            let secret = try await http("PUT", phone.base + "/config/SIP_PASS_2", body: #"{"value": "n3w-pass"}"#)
            #expect(secret.status == 200)
            #expect(secret.object["value"] as? String == "********")
            #expect(!secret.text.contains("n3w-pass"))

            let reset = try await http("POST", phone.base + "/factory-reset")
            #expect(reset.status == 200)
            #expect(reset.object["outcome"] as? String == "provisioned")
            let after = try await http("GET", phone.base + "/config/NTP_ADDR").object
            #expect(after["source"] as? String == "master")  // the local edit is gone, provisioning is back
            let log = try await http("GET", phone.base + "/events").array
            #expect(log.first?["kind"] as? String == "factory-reset")
            let status = try await http("GET", phone.base + "/status").object
            #expect(status["mac"] as? String == testMAC)  // the identity survives
        }
    }

    // MARK: - Refusals

    @Test func editRefusalsCarryStatusKindAndMessage() async throws {
        try await withPhone { phone in
            let url = phone.base + "/config/"

            let unknown = try await http("PUT", url + "NTP_ADRR", body: #"{"value": "x"}"#)
            #expect(unknown.status == 404)
            #expect(unknown.object["error"] as? String == "unknown_parameter")
            let unknownMessage = unknown.object["message"] as? String ?? ""
            #expect(unknownMessage.contains("NTP_ADRR is not a parameter of KX-UTG300"))
            #expect(unknownMessage.contains("did you mean NTP_ADDR"))

            let readOnly = try await http("PUT", url + "SIP_AUTHID_1", body: #"{"value": "999"}"#)
            #expect(readOnly.status == 403)
            #expect(readOnly.object["error"] as? String == "read_only")
            #expect((readOnly.object["message"] as? String)?.contains("perm=\"R\"") == true)

            // a value the phone would not use, as `vphone config set` refuses it (the same rule)
            let invalid = try await http("PUT", url + "CFG_RESYNC_TIME", body: #"{"value": "25:99"}"#)
            #expect(invalid.status == 422)
            #expect(invalid.object["error"] as? String == "invalid_value")
            #expect(
                (invalid.object["message"] as? String)?.hasPrefix(
                    "CFG_RESYNC_TIME=\"25:99\" is not a time of day HH:MM (00:00-23:59)"
                ) == true,
                "\(invalid.text)"
            )
            let scheme = try await http("PUT", url + "USR_PROV_SVR_URL", body: #"{"value": "file:///etc/passwd"}"#)
            #expect(scheme.status == 422)
            #expect((scheme.object["message"] as? String)?.contains("the scheme \"file\" is refused") == true)

            for (body, fragment) in [
                ("{not json", "not valid JSON"),
                ("", "the body is empty"),
                (#"["ntp.local"]"#, "not a JSON object"),
                (#"{"val": "x"}"#, "has no \"value\""),
                (#"{"value": 3600}"#, "must be a JSON string"),
                (#"{"value": "x", "perm": "!"}"#, "unexpected key(s) perm"),
            ] {
                let bad = try await http("PUT", url + "NTP_ADDR", body: body)
                #expect(bad.status == 400, "\(body)")
                #expect(bad.object["error"] as? String == "bad_json", "\(body)")
                #expect((bad.object["message"] as? String)?.contains(fragment) == true, "\(body): \(bad.text)")
            }
            let big = try await http(
                "PUT",
                url + "NTP_ADDR",
                body: #"{"value": ""# + String(repeating: "x", count: 70_000) + "\"}"
            )
            #expect(big.status == 413)
            #expect(big.object["error"] as? String == "payload_too_large")

            // nothing was changed by any of them
            let config = try await http("GET", phone.base + "/config").object as? [String: [String: String]] ?? [:]
            #expect(config["NTP_ADDR"]?["value"] == "pool.ntp.org")
            #expect(config["SIP_AUTHID_1"]?["value"] == "201")
            #expect(config["CFG_RESYNC_TIME"]?["value"] == "")
            #expect(config["USR_PROV_SVR_URL"]?["source"] == "factory")
        }
    }

    @Test func unknownRoutesAndWrongMethods() async throws {
        try await withPhone { phone in
            let missing = try await http("GET", phone.base + "/nope")
            #expect(missing.status == 404)
            #expect(missing.object["error"] as? String == "not_found")
            #expect(missing.object["message"] as? String == "no such page: /nope; GET / lists the routes")

            let wrong = try await http("GET", phone.base + "/resync")
            #expect(wrong.status == 405)
            #expect(wrong.header("Allow") == "POST")
            #expect(wrong.object["error"] as? String == "method_not_allowed")
            #expect(wrong.object["message"] as? String == "GET /resync is not served; use POST")

            let delete = try await http("DELETE", phone.base + "/config/NTP_ADDR")
            #expect(delete.status == 405)
            #expect(delete.header("Allow") == "GET, PUT")
        }
    }

    // MARK: - The admin password

    @Test func adminPasswordGuardsEverythingButHealthz() async throws {
        try await withPhone(auth: .password("op3n-sesame")) { phone in
            for route in ["/", "/status", "/config", "/events", "/nope"] {
                let none = try await http("GET", phone.base + route)
                #expect(none.status == 401, "\(route)")
                #expect(none.header("WWW-Authenticate") == #"Basic realm="KX-UTG300", charset="UTF-8""#)
                #expect(none.object["error"] as? String == "unauthorized")
                #expect((none.object["message"] as? String)?.contains("needs the admin password") == true)
            }
            let wrong = try await http("GET", phone.base + "/status", user: "admin", password: "guess")
            #expect(wrong.status == 401)
            #expect(wrong.object["message"] as? String == "wrong user or password (HTTP Basic, user \"admin\")")
            let wrongUser = try await http("GET", phone.base + "/status", user: "root", password: "op3n-sesame")
            #expect(wrongUser.status == 401)
            let refused = try await http("POST", phone.base + "/reboot", user: "admin", password: "op3n-sesam")
            #expect(refused.status == 401)
            #expect(try await http("GET", phone.base + "/status").status == 401)

            let right = try await http("GET", phone.base + "/status", user: "admin", password: "op3n-sesame")
            #expect(right.status == 200)
            #expect(right.object["mac"] as? String == testMAC)
            let edit = try await http(
                "PUT",
                phone.base + "/config/NTP_ADDR",
                body: #"{"value": "ntp.local"}"#,
                user: "admin",
                password: "op3n-sesame"
            )
            #expect(edit.status == 200)
            let health = try await http("GET", phone.base + "/healthz")
            #expect(health.status == 200)
        }
    }

    @Test func phoneCredentialsFollowProvisionedAdminPass() async throws {
        try await withPhone(auth: .phone) { phone in
            // factory ADMIN_ID/ADMIN_PASS: admin / adminpass (the profile's defaults)
            #expect(try await http("GET", phone.base + "/status", user: "admin", password: "wrong").status == 401)
            #expect(try await http("GET", phone.base + "/status", user: "admin", password: "adminpass").status == 200)
            let changed = try await http(
                "PUT",
                phone.base + "/config/ADMIN_PASS",
                body: #"{"value": "n3w"}"#,
                user: "admin",
                password: "adminpass"
            )
            #expect(changed.status == 200)
            #expect(try await http("GET", phone.base + "/status", user: "admin", password: "adminpass").status == 401)
            #expect(try await http("GET", phone.base + "/status", user: "admin", password: "n3w").status == 200)
        }
    }

    @Test func passwordFromAFile() throws {
        let dir = try temporaryDirectory("vphone-api-secret")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "s3cret\n".write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
        #expect(try ControlAuth(password: nil, passwordFile: dir + "/pw") == .password("s3cret"))
        #expect(try ControlAuth(password: "x", passwordFile: nil) == .password("x"))
        #expect(try ControlAuth(password: nil, passwordFile: nil) == ControlAuth.none)
        #expect(throws: ControlServerError.self) { try ControlAuth(password: "x", passwordFile: dir + "/pw") }
        #expect(throws: ControlServerError.self) { try ControlAuth(password: nil, passwordFile: dir + "/missing") }
        #expect(throws: ControlServerError.self) { try ControlAuth(password: "", passwordFile: nil) }
    }

    // MARK: - Listening

    @Test func bindsLoopbackByDefaultAndSaysWhyItCannotListen() async throws {
        try await withPhone { phone in
            #expect(phone.api.bind == "127.0.0.1")
            #expect(phone.api.url == "http://127.0.0.1:\(phone.api.port)/")
            do {
                let second = try await ControlServer.start(
                    runtime: phone.runtime,
                    port: phone.api.port,
                    logger: quietLogger
                )
                await second.stop()
                Issue.record("a second server on the same port started")
            } catch {
                #expect("\(error)".contains("cannot listen on 127.0.0.1:\(phone.api.port)"), "\(error)")
                #expect("\(error)".contains("in use"), "\(error)")
            }
            await #expect(throws: ControlServerError.self) {
                _ = try await ControlServer.start(
                    runtime: phone.runtime,
                    port: 0,
                    bind: "not-an-address",
                    logger: quietLogger
                )
            }
            await #expect(throws: ControlServerError.self) {
                _ = try await ControlServer.start(runtime: phone.runtime, port: 70000, logger: quietLogger)
            }
            // IPv6 loopback works too
            let v6 = try await ControlServer.start(runtime: phone.runtime, port: 0, bind: "::1", logger: quietLogger)
            #expect(v6.url == "http://[::1]:\(v6.port)/")
            let r = try await http("GET", "http://[::1]:\(v6.port)/healthz")
            #expect(r.text == "ok\n")
            await v6.stop()
        }
    }
}
