import PhoneCore
import Testing
import VPhoneTesting

/// A file that provisions a line the model does not have (`<Line idx="7">` on the 6-line KX-UTG300): those
/// parameters are ignored with a file warning, the rest of the file applies, and `config show` never lists them (as
/// `config set SIP_PASS_7` is refused).
@Suite("Lines the model does not have")
struct LineRangeTests {
    /// Lines 6 and 7 (line 7's parameters from line 6 of the file on), and a device-wide parameter.
    static let sevenLines = """
        <PANASIPPhoneConfig>
        <Device>
        <Lines>
        <Line idx="6"><PHONE_NUMBER>600</PHONE_NUMBER></Line>
        <Line idx="7">
        <PHONE_NUMBER>700</PHONE_NUMBER>
        <SIP_URI>sip:700@pbx</SIP_URI>
        </Line>
        </Lines>
        <SYSLOG_PORT>5140</SYSLOG_PORT>
        </Device>
        </PANASIPPhoneConfig>
        """

    static let warning = "line 6: PHONE_NUMBER_7, SIP_URI_7: the KX-UTG300 has lines 1 to 6, not line 7; ignored"

    @Test(arguments: [FileKind.standard, .product, .master])
    func aLineTheModelLacksIsIgnoredWithAWarning(kind: FileKind) throws {
        var phone = threeFilePhone()
        phone.server[[.standard: std, .product: prod, .master: mast][kind]!] = .file(Self.sevenLines)
        #expect(phone.powerOn()?.outcome == .provisioned)
        #expect(phone.effective("PHONE_NUMBER_7") == nil)
        #expect(phone.effective("SIP_URI_7") == nil)
        #expect(phone.effective("PHONE_NUMBER_6")! == ("600", ParameterSource(kind)))
        #expect(phone.effective("SYSLOG_PORT")! == ("5140", ParameterSource(kind)))
        let shown = ConfigView.effective(profile: TestProfiles.utg300, snapshot: phone.flash).map(\.name)
        #expect(!shown.contains { $0.hasSuffix("_7") })
        let warnings = phone.events(kind: "file-warning").map(\.message)
        #expect(warnings.count == 1)
        #expect(warnings.first?.hasSuffix(": \(Self.warning)") == true, "\(warnings)")
        // The saved copy standing in after a failure is read the same way.
        phone.server[[.standard: std, .product: prod, .master: mast][kind]!] = .down()
        phone.reboot()
        #expect(phone.powerOn()?.outcome == .fellBack)
        #expect(phone.effective("PHONE_NUMBER_7") == nil)
        #expect(phone.effective("PHONE_NUMBER_6")! == ("600", ParameterSource(kind)))
    }

    /// A fleet reads a phone's own file against the last one's (same names: no document is made): a file with a
    /// line the model lacks is never that template, so every phone ignores the line and says so, as a phone alone.
    @Test func fleetPhonesIgnoreItToo() throws {
        let shared = PreparedProfile(TestProfiles.utg300, sharing: true)
        func own(_ i: Int, line7: Bool) -> String {
            var entries = (1...6).map { ("PHONE_NUMBER_\($0)", "\(i)0\($0)") }
            if line7 { entries.append(("PHONE_NUMBER_7", "\(i)07")) }
            return Fixture.device(entries)
        }
        for (i, line7) in [(0, false), (1, true), (2, true), (3, false), (4, false), (5, true)] {
            let mac = MAC(value: 0x0080_F000_0001 + UInt64(i))
            var alone = threeFilePhone(standard: own(i, line7: line7), mac: mac)
            var fleet = threeFilePhone(standard: own(i, line7: line7), mac: mac, prepared: shared)
            alone.powerOn()
            fleet.powerOn()
            #expect(fleet.effective("PHONE_NUMBER_7") == nil, "phone \(i)")
            #expect(fleet.effective("PHONE_NUMBER_6")! == ("\(i)06", .standard), "phone \(i)")
            #expect(fleet.events(kind: "file-warning").count == (line7 ? 1 : 0), "phone \(i)")
            #expect(alone.flash.parameters.dictionary == fleet.flash.parameters.dictionary, "phone \(i)")
            #expect(alone.events == fleet.events, "phone \(i)")
        }
    }

    /// Standard Format names a per-line parameter NAME_n itself; line 0 is no line either. A name that is not a
    /// per-line parameter of the profile is left as it was (`CFG_ROOT_CERTIFICATE_PATH3`, an unknown `FOO_9`).
    @Test func standardFormatPerLineNamesOutsideTheLines() throws {
        var profile = TestProfiles.utg300
        profile.model = "KX-UT123"
        profile.formats = [.text]
        profile.lines = 2
        var phone = SimulatedPhone(profile: profile, discovery: DiscoveryOptions(provisioningURL: base))
        phone.server["\(base)/KX-UT123.cfg"] = .file(
            "# Panasonic SIP Phone Standard Format File #\r\n"
                + "PHONE_NUMBER_2=\"202\"\r\nPHONE_NUMBER_3=\"303\"\r\nSIP_PASS_0=\"zero\"\r\nSIP_PASS_3=\"p3\"\r\n"
                + "FOO_9=\"kept\"\r\n\r\n"
        )
        #expect(phone.powerOn()?.outcome == .provisioned)
        #expect(phone.effective("PHONE_NUMBER_2")! == ("202", .initial))
        for name in ["PHONE_NUMBER_3", "SIP_PASS_0", "SIP_PASS_3"] { #expect(phone.effective(name) == nil, "\(name)") }
        #expect(phone.effective("FOO_9")! == ("kept", .initial))
        let warnings = phone.events(kind: "file-warning").map(\.message)
        #expect(warnings.count == 2)
        #expect(
            warnings.contains {
                $0.hasSuffix("line 3: PHONE_NUMBER_3, SIP_PASS_3: the KX-UT123 has lines 1 to 2, not line 3; ignored")
            }
        )
        #expect(
            warnings.contains { $0.hasSuffix("line 4: SIP_PASS_0: the KX-UT123 has lines 1 to 2, not line 0; ignored") }
        )
        #expect(!warnings.contains { $0.contains("zero") || $0.contains("p3") })  // names, never values
    }

    @Test func absentLine() {
        let p = TestProfiles.utg300
        #expect(p.absentLine("SIP_PASS_7") == 7)
        #expect(p.absentLine("SIP_PASS_99") == 99)
        #expect(p.absentLine("SIP_PASS_0") == 0)
        #expect(p.absentLine("SIP_PASS_6") == nil)
        #expect(p.absentLine("SIP_PASS_1") == nil)
        #expect(p.absentLine("CFG_ROOT_CERTIFICATE_PATH3") == nil)
        #expect(p.absentLine("NTP_ADDR") == nil)
        #expect(p.absentLine("FOO_7") == nil)
    }
}
