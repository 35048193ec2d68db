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
