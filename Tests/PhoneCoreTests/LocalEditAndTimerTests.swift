import PhoneCore
import Testing
import VPhoneTesting

@Suite("Local edits against provisioning (spec §4)")
struct LocalEditTests {
    @Test func localEditBeatsProvisioningWithoutBang() throws {
        var phone = threeFilePhone()
        phone.powerOn()
        phone.send(.localEdit(name: "SIP_AUTHID_1", value: "mine"))
        #expect(phone.effective("SIP_AUTHID_1")! == ("mine", .local))
        phone.reboot()
        phone.powerOn()
        #expect(phone.effective("SIP_AUTHID_1")! == ("mine", .local))
        #expect(phone.flash.localEdits["SIP_AUTHID_1"]?.value == "mine")
    }

    @Test(arguments: ["!", "!R", "!RW"])
    func bangOverwritesTheLocalEdit(perm: String) throws {
        var phone = threeFilePhone()
        phone.powerOn()
        phone.send(.localEdit(name: "SIP_AUTHID_1", value: "mine"))
        phone.server[std] = .file(Fixture.device([("SIP_AUTHID_1", "forced", perm)]))
        phone.reboot()
        phone.powerOn()
        #expect(phone.effective("SIP_AUTHID_1")! == ("forced", .standard))
        #expect(phone.flash.localEdits["SIP_AUTHID_1"] == nil)
        #expect(phone.events(kind: "override").count == 1)
    }

    @Test func bangFromASavedCopyDoesNotOverwrite() throws {
        var phone = threeFilePhone(standard: Fixture.device([("SIP_AUTHID_1", "forced", "!")]))
        phone.powerOn()
        phone.send(.localEdit(name: "SIP_AUTHID_1", value: "mine"))
        phone.server[std] = .down()
        phone.reboot()
        phone.powerOn()
        #expect(phone.effective("SIP_AUTHID_1")! == ("mine", .local))
    }

    @Test func readOnlyRefusesLocalEdits() throws {
        var phone = threeFilePhone(standard: Fixture.device([("SIP_AUTHID_1", "locked", "R")]))
        phone.powerOn()
        phone.send(.localEdit(name: "SIP_AUTHID_1", value: "mine"))
        #expect(phone.refusals.map(\.kind) == [.readOnly])
        #expect(phone.refusals.first?.message.contains("perm=\"R\"") == true)
        #expect(phone.effective("SIP_AUTHID_1")! == ("locked", .standard))
        #expect(phone.events(kind: "local-edit-refused").count == 1)
    }

    @Test(arguments: ["RW", ""])
    func writableParametersAcceptLocalEdits(perm: String) throws {
        var phone = threeFilePhone(standard: Fixture.device([("SIP_AUTHID_1", "x", perm)]))
        phone.powerOn()
        phone.send(.localEdit(name: "SIP_AUTHID_1", value: "mine"))
        #expect(phone.refusals.isEmpty)
        #expect(phone.effective("SIP_AUTHID_1")! == ("mine", .local))
    }

    @Test func unknownParameterIsRefusedWithASuggestion() throws {
        var phone = SimulatedPhone()
        phone.send(.localEdit(name: "CFG_CYCLICK", value: "Y"))
        #expect(phone.refusals.map(\.kind) == [.unknownParameter])
        #expect(phone.refusals.first?.message.contains("CFG_CYCLIC") == true)
        phone.send(.localEdit(name: "SIP_AUTHID_7", value: "x"))  // the profile has 6 lines
        #expect(phone.refusals.count == 2)
    }

    /// The web UI refuses a value the phone would then refuse or replace by a default (the QA pass's examples);
    /// the message names the parameter, the value and the form accepted, and nothing is written.
    static let invalidValues: [(String, String, String)] = [
        ("CFG_CYCLIC", "maybe", "Y or N"),
        ("CFG_RESYNC_TIME", "25:99", "a time of day HH:MM (00:00-23:59)"),
        ("TIME_ZONE", "999999999999", "minutes from UTC in -840...840"),
        ("CFG_CYCLIC_INTVL", "0", "minutes in 1...40320"),
        ("CFG_RTRY_INTVL", "1441", "minutes in 1...1440"),
        ("CFG_CYCLIC_INTVL", "", "minutes in 1...40320"),
        ("USR_PROV_SVR_URL", "file:///etc/passwd", "the scheme \"file\" is refused"),
        ("CFG_STANDARD_FILE_PATH", "gopher://prov/std.cfg", "the scheme \"gopher\" is refused"),
        ("CFG_ROOT_CERTIFICATE_PATH3", "http://prov/" + String(repeating: "x", count: 400), "at most 384"),
        ("PROVISION_ENABLE", "", "Y or N"),
        ("HTTP_ENABLE_PROXY", "1", "Y or N"),
    ]

    @Test(arguments: invalidValues)
    func valuesThePhoneWouldNotUseAreRefused(name: String, value: String, expected: String) {
        var phone = SimulatedPhone()
        phone.send(.localEdit(name: name, value: value))
        #expect(phone.refusals.map(\.kind) == [.invalidValue])
        let message = phone.refusals.first?.message ?? ""
        #expect(message.hasPrefix("\(name)=\"\(value.prefix(20))"), "\(message)")
        #expect(message.contains(expected), "\(message)")
        #expect(phone.flash.localEdits[name] == nil)
        #expect(phone.events(kind: "local-edit-refused").first?.fields["reason"] == "invalid_value")
    }

    /// Valid values, and an empty one where it means "unset", are taken as before.
    static let validValues: [(String, String)] = [
        ("CFG_CYCLIC", "Y"), ("CFG_CYCLIC", "no"), ("CFG_CYCLIC", "Yes"), ("CFG_RESYNC_TIME", "03:30"),
        ("CFG_RESYNC_TIME", ""), ("TIME_ZONE", "-540"), ("TIME_ZONE", ""), ("CFG_CYCLIC_INTVL", "40320"),
        ("CFG_RTRY_INTVL", " 1 "), ("USR_PROV_SVR_URL", ""), ("USR_PROV_SVR_URL", "prov.example/{MAC}.cfg"),
        ("CFG_MASTER_FILE_PATH", "HTTPS://prov/m.cfg"), ("NTP_ADDR", "not checked"),
    ]

    @Test(arguments: validValues)
    func valuesThePhoneUsesAreTaken(name: String, value: String) {
        var phone = SimulatedPhone()
        phone.send(.localEdit(name: name, value: value))
        #expect(phone.refusals.isEmpty, "\(phone.refusals)")
        #expect(phone.flash.localEdits[name]?.value == value)
    }

    /// A URL's credentials stay out of the refusal, as out of every event.
    @Test func aRefusedURLHasItsCredentialsMasked() {
        var phone = SimulatedPhone()
        phone.send(.localEdit(name: "USR_PROV_SVR_URL", value: "sftp://carol:CarolPw9@prov.test/"))
        #expect(phone.refusals.first?.message.contains("sftp://***@prov.test/") == true)
        #expect(!phone.events.contains { $0.message.contains("CarolPw9") })
    }

    @Test func secretsAreNotLogged() {
        var phone = SimulatedPhone()
        phone.send(.localEdit(name: "SIP_PASS_1", value: "hunter2"))
        #expect(phone.flash.localEdits["SIP_PASS_1"]?.value == "hunter2")
        #expect(!phone.events.contains { $0.message.contains("hunter2") || $0.fields.values.contains("hunter2") })
        // Nor a URL's credentials: the edit is kept whole, its event shows ***@.
        phone.send(.localEdit(name: "USR_PROV_SVR_URL", value: "http://carol:CarolPw9@prov.test/"))
        #expect(phone.flash.localEdits["USR_PROV_SVR_URL"]?.value == "http://carol:CarolPw9@prov.test/")
        #expect(phone.events.last?.message == "local edit: USR_PROV_SVR_URL = \"http://***@prov.test/\"")
    }
}

/// 2026-11-18T00:00:00Z, the midnight before `SimulatedPhone.epoch` (11:06:40Z).
let midnight: Int64 = 1_795_000_000_000 - 40_000_000

@Suite("Re-provisioning timers (spec §7)")
struct TimerTests {
    func phone(standard: [(String, String)]) -> SimulatedPhone {
        threeFilePhone(standard: Fixture.device(standard))
    }

    @Test func noTimersByDefaultAfterSuccess() {
        var p = phone(standard: [])
        p.powerOn()
        #expect(p.machine.timers.isEmpty)
        #expect(p.advance(minutes: 7 * 24 * 60).isEmpty)
    }

    @Test func cyclicResyncsCountedFromStartUp() {
        var p = phone(standard: [("CFG_CYCLIC", "Y"), ("CFG_CYCLIC_INTVL", "1440")])
        p.powerOn()
        let start = p.now
        #expect(p.machine.timers == [.cyclic: start.adding(minutes: 1440)])
        let week = p.advance(minutes: 7 * 24 * 60)
        #expect(week.count == 7)
        #expect(week.map(\.startedAt) == (1...7).map { start.adding(minutes: 1440 * Int64($0)) })
        #expect(week.allSatisfy { $0.trigger == "cyclic" && $0.outcome == .provisioned })
        #expect(p.fetched.count == 4 * 8)
    }

    @Test func cyclicResyncPicksUpAChangedFile() {
        var p = phone(standard: [("CFG_CYCLIC", "Y"), ("CFG_CYCLIC_INTVL", "60"), ("SIP_AUTHID_1", "std")])
        p.powerOn()
        p.server[std] = .file(
            Fixture.device([("CFG_CYCLIC", "Y"), ("CFG_CYCLIC_INTVL", "60"), ("SIP_AUTHID_1", "new")])
        )
        #expect(p.advance(minutes: 59).isEmpty)
        #expect(p.effective("SIP_AUTHID_1")! == ("std", .standard))
        #expect(p.advance(minutes: 1).count == 1)
        #expect(p.effective("SIP_AUTHID_1")! == ("new", .standard))
    }

    @Test func retryAfterFailureThenBackToCyclic() {
        var p = phone(standard: [("CFG_CYCLIC", "Y"), ("CFG_CYCLIC_INTVL", "120"), ("CFG_RTRY_INTVL", "10")])
        p.powerOn()
        let start = p.now
        p.server[mast] = .down()
        let first = p.advance(minutes: 120)
        #expect(first.map(\.outcome) == [.fellBack])
        #expect(p.machine.timers[.retry] == start.adding(minutes: 130))
        #expect(p.machine.timers[.cyclic] == start.adding(minutes: 240))
        p.server[mast] = .file(Fixture.device([("NTP_ADDR", "back")]))
        let retried = p.advance(minutes: 10)
        #expect(retried.map(\.trigger) == ["retry"])
        #expect(retried.map(\.outcome) == [.provisioned])
        #expect(p.machine.timers[.retry] == nil)
        #expect(p.machine.timers[.cyclic] == start.adding(minutes: 240))
    }

    @Test func retryKeepsTryingEveryInterval() {
        var p = threeFilePhone()
        p.server[initialURL] = .down()
        p.powerOn()
        let cycles = p.advance(minutes: 90)
        #expect(cycles.count == 3)
        #expect(cycles.allSatisfy { $0.trigger == "retry" && $0.outcome == .unconfigured })
    }

    @Test func dailyResyncTimeDisablesCyclicAndRetry() {
        var p = phone(standard: [("CFG_CYCLIC", "Y"), ("CFG_CYCLIC_INTVL", "60"), ("CFG_RESYNC_TIME", "03:30")])
        p.server[mast] = .down()  // a failure would arm the retry timer if resync time did not disable it
        p.powerOn()
        // epoch is 2026-11-18T11:06:40Z; TIME_ZONE 0: next 03:30 is on the 19th
        let due = PhoneTime(millisecondsSinceEpoch: midnight + 86_400_000 + 210 * 60_000)
        #expect(p.machine.timers == [.resync: due])
        let days = p.advance(minutes: 3 * 24 * 60)
        #expect(days.count == 3)
        #expect(days.map(\.startedAt) == [due, due.adding(minutes: 1440), due.adding(minutes: 2880)])
    }

    @Test func resyncTimeFollowsTheDeviceTimeZone() {
        var p = phone(standard: [("CFG_RESYNC_TIME", "03:30"), ("TIME_ZONE", "540")])  // UTC+9
        p.powerOn()
        // 11:06:40Z is 20:06:40 local; the next local 03:30 is 2026-11-18T18:30:00Z
        let due = PhoneTime(millisecondsSinceEpoch: midnight + 18 * 3_600_000 + 30 * 60_000)
        #expect(p.machine.timers[.resync] == due)
    }

    @Test func invalidTimerValuesFallBackToDefaultsAndSaySo() {
        var p = phone(standard: [("CFG_CYCLIC", "Y"), ("CFG_CYCLIC_INTVL", "99999"), ("CFG_RESYNC_TIME", "25:00")])
        p.powerOn()
        #expect(p.machine.timers == [.cyclic: p.now.adding(minutes: 10080)])
        let warnings = p.events(kind: "config").map(\.message)
        #expect(warnings.contains { $0.contains("CFG_CYCLIC_INTVL") })
        #expect(warnings.contains { $0.contains("CFG_RESYNC_TIME") })
    }

    /// A provisioned CFG_CYCLIC that is neither Y nor N is read as N, and the phone says so (as it refuses it as a
    /// local edit).
    @Test func aCyclicSwitchThatIsNotYOrNIsOffAndSaysSo() {
        var p = phone(standard: [("CFG_CYCLIC", "maybe"), ("CFG_CYCLIC_INTVL", "60")])
        p.powerOn()
        #expect(p.machine.timers.isEmpty)
        #expect(
            p.events(kind: "config").map(\.message) == [
                "CFG_CYCLIC=\"maybe\" is not Y or N (Yes and No, in any case, too); the cyclic resync is off"
            ]
        )
    }

    @Test func sipNotifyCheckSyncResyncsAtOnce() {
        var p = phone(standard: [])
        p.powerOn()
        #expect(p.send(.sipNotify(event: "check-sync"))?.trigger == "notify")
        #expect(p.send(.sipNotify(event: "something-else")) == nil)
    }

    @Test func timersDoNotSurviveAPowerCycle() {
        var p = threeFilePhone()
        p.server[initialURL] = .down()
        p.powerOn()
        #expect(p.flash.timers[.retry] != nil)
        p.server[initialURL] = threeFilePhone().server[initialURL]
        p.reboot()
        p.powerOn()
        #expect(p.flash.timers.isEmpty)
        #expect(p.machine.timers.isEmpty)
    }
}

@Suite("Merge rules (spec §4)")
struct MergeTests {
    @Test func sourcesAndCounts() throws {
        let doc = { (xml: String) in try ConfigParserShim.parse(xml) }
        let r = Merge.effective(
            files: [
                MergeInput(kind: .master, document: try doc(Fixture.device([("A", "m"), ("B", "m")])), fresh: true),
                MergeInput(kind: .standard, document: try doc(Fixture.device([("A", "s")])), fresh: true),
            ],
            localEdits: ["B": LocalEdit(name: "B", value: "l", editedAt: SimulatedPhone.epoch)]
        )
        #expect(r.parameters["A"]?.source == .standard)
        #expect(r.parameters["B"]?.source == .local)
        #expect(r.keptLocalEdits == ["B"])
        #expect(r.countBySource == [.standard: 1, .local: 1])
    }
}
