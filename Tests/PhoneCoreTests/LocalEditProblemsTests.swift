import PhoneCore
import Testing
import VPhoneTesting

/// `LocalEditRule.problems`: the local edits of an image made elsewhere (`vphone flash import`) that `config set`
/// would refuse. The image keeps them; the command warns of each.
@Suite("Local edits of an imported image")
struct LocalEditProblemsTests {
    static let t0 = PhoneTime(millisecondsSinceEpoch: 1_795_000_000_000)
    static let mac = MAC("0080F0C571EB")!

    /// An image with `edits` as local edits, each in force (in the table as `local`) unless `table` has the name.
    func image(
        edits: [(String, String)],
        table: [Parameter] = [],
        profile: DeviceProfile = TestProfiles.utg300
    ) -> FlashSnapshot {
        var snapshot = FlashSnapshot(identity: Identity(mac: Self.mac, profile: profile, createdAt: Self.t0))
        for (name, value) in edits {
            snapshot.localEdits[name] = LocalEdit(name: name, value: value, editedAt: Self.t0)
            snapshot.parameters[name] = Parameter(name: name, value: value, source: .local)
        }
        for parameter in table { snapshot.parameters[parameter.name] = parameter }
        return snapshot
    }

    @Test func editsConfigSetTakesAreNoProblem() {
        let snapshot = image(
            edits: [("NTP_ADDR", "ntp.local"), ("CFG_CYCLIC_INTVL", "60"), ("SIP_AUTHID_1", "mine")],
            table: [Parameter(name: "DISPLAY_NAME_1", value: "Desk", source: .standard, perm: "R")]
        )
        #expect(LocalEditRule.problems(in: snapshot, profile: TestProfiles.utg300).isEmpty)
    }

    /// One refusal per kind, by name, each the one `config set` gives for the edit on the image as provisioned.
    @Test func eachRefusedEditIsNamedWithConfigSetsRefusal() throws {
        // A read-only value under an edit: only a hand-edited export has both (the phone's table shows the edit).
        let locked = Parameter(name: "SIP_AUTHID_1", value: "201", source: .standard, perm: "R")
        let edits = [
            ("CFG_CYCLIC_INTVL", "abc"), ("NO_SUCH_PARAM", "1"), ("SIP_AUTHID_1", "mine"), ("SIP_AUTHID_7", "x"),
            ("NTP_ADDR", "fine"),
        ]
        let problems = LocalEditRule.problems(in: image(edits: edits, table: [locked]), profile: TestProfiles.utg300)
        #expect(problems.map(\.name) == ["CFG_CYCLIC_INTVL", "NO_SUCH_PARAM", "SIP_AUTHID_1", "SIP_AUTHID_7"])
        #expect(problems.map(\.kind) == [.invalidValue, .unknownParameter, .readOnly, .unknownParameter])
        let provisioned = image(edits: [], table: [locked])
        for problem in problems {
            let value = edits.first { $0.0 == problem.name }?.1 ?? ""
            #expect(throws: problem) {
                try LocalEditRule.apply(
                    name: problem.name,
                    value: value,
                    snapshot: provisioned,
                    profile: TestProfiles.utg300,
                    at: Self.t0
                )
            }
        }
    }

    /// The table's entry for an edit in force is the edit itself: it does not make an unknown name known (no saved
    /// file provisions it here).
    @Test func anEditInForceIsJudgedWithoutItsOwnEntry() {
        let snapshot = image(edits: [("CFG_CYCLICK", "Y")])
        let problems = LocalEditRule.problems(in: snapshot, profile: TestProfiles.utg300)
        #expect(problems.map(\.kind) == [.unknownParameter])
        #expect(problems.first?.message.contains("did you mean CFG_CYCLIC") == true, "\(problems)")
    }

    /// A name a file provisions is known to the phone, even when the profile lacks it (as `config set` says).
    @Test func aProvisionedNameTheProfileLacksIsKnown() {
        let snapshot = image(
            edits: [("CUSTOM_KEY", "mine")],
            table: [Parameter(name: "CUSTOM_KEY", value: "theirs", source: .master)]
        )
        #expect(LocalEditRule.problems(in: snapshot, profile: TestProfiles.utg300).isEmpty)
    }

    /// An image as `config set` leaves it: a file provisions a name the profile lacks, the edit of it is taken, and
    /// the edit in force replaces the file's value in the table. The saved file still makes the name known.
    @Test func anEditInForceOfANameASavedFileProvisionsIsNoProblem() throws {
        var provisioned = image(edits: [], table: [Parameter(name: "CUSTOM_KEY", value: "theirs", source: .master)])
        provisioned.savedFiles[.master] = savedFile(.master, [("CUSTOM_KEY", "theirs", nil)])
        let changes = try LocalEditRule.apply(
            name: "CUSTOM_KEY",
            value: "mine",
            snapshot: provisioned,
            profile: TestProfiles.utg300,
            at: Self.t0
        )
        let edited = provisioned.applying(changes)
        #expect(edited.parameters["CUSTOM_KEY"]?.source == .local)
        #expect(LocalEditRule.problems(in: edited, profile: TestProfiles.utg300).isEmpty)
    }

    /// The value under an edit in force is the saved file's, with its `perm`: read-only there, refused.
    @Test func anEditInForceOverASavedReadOnlyValueIsRefused() {
        var snapshot = image(edits: [("SIP_AUTHID_1", "mine")])
        snapshot.savedFiles[.standard] = savedFile(.standard, [("SIP_AUTHID_1", "201", "R")])
        let problems = LocalEditRule.problems(in: snapshot, profile: TestProfiles.utg300)
        #expect(problems.map(\.kind) == [.readOnly], "\(problems)")
        #expect(problems.first?.message.contains("the standard file provisions it with perm=\"R\"") == true)
    }

    /// A saved copy of a `kind` file provisioning `params` (name, value, perm).
    func savedFile(_ kind: FileKind, _ params: [(String, String, String?)]) -> SavedFile {
        SavedFile(
            kind: kind,
            url: "http://prov.test/\(kind.rawValue).cfg",
            body: Array(Fixture.device(params).utf8),
            savedAt: Self.t0
        )
    }

    @Test func aSecretsValueIsNeverInTheMessage() {
        var profile = TestProfiles.utg300
        profile.secrets.append("TIME_ZONE")
        let snapshot = image(edits: [("TIME_ZONE", "hunter2")], profile: profile)
        let problems = LocalEditRule.problems(in: snapshot, profile: profile)
        #expect(problems.map(\.kind) == [.invalidValue])
        let message = problems.first?.message ?? ""
        #expect(!message.contains("hunter2"), "\(message)")
        #expect(message.hasPrefix("TIME_ZONE=\"********\" is not minutes from UTC"), "\(message)")
    }

    /// A secret URL's refusal keeps its reason, which never quotes the credentials.
    @Test func aSecretURLsRefusalKeepsItsReason() {
        var profile = TestProfiles.utg300
        profile.secrets.append("CFG_STANDARD_FILE_PATH")
        let snapshot = image(edits: [("CFG_STANDARD_FILE_PATH", "gopher://prov.test/std.cfg")], profile: profile)
        let message = LocalEditRule.problems(in: snapshot, profile: profile).first?.message ?? ""
        #expect(message.hasPrefix("CFG_STANDARD_FILE_PATH=\"********\" is not a URL"), "\(message)")
        #expect(message.contains("the scheme \"gopher\" is refused"), "\(message)")
        #expect(!message.contains("prov.test"), "\(message)")
    }

    @Test func aURLsCredentialsAreMasked() {
        let snapshot = image(edits: [("CFG_STANDARD_FILE_PATH", "gopher://carol:CarolPw9@prov.test/std.cfg")])
        let message = LocalEditRule.problems(in: snapshot, profile: TestProfiles.utg300).first?.message ?? ""
        #expect(message.contains("gopher://***@prov.test/std.cfg"), "\(message)")
        #expect(message.contains("the scheme \"gopher\" is refused"), "\(message)")
        #expect(!message.contains("CarolPw9"), "\(message)")
    }
}
