// renderXML writes what parse reads back (spec §2 layout: <Initial><CfgFiles>/<Certs>, <Device>, <Line idx>).

import ConfigFormats
import Testing

@Suite("Rendering XML")
struct RenderTests {
    static let perLineNames: Set<String> = [
        "PHONE_NUMBER", "SIP_URI", "LINE_ENABLE", "SIP_AUTHID", "SIP_PASS", "SIP_RGSTR_ADDR", "SIP_RGSTR_PORT",
        "SIP_PRXY_ADDR", "SIP_PRXY_PORT", "REG_EXPIRE_TIME",
    ]

    /// What identifies an entry apart from where it was written.
    struct Content: Hashable {
        var name, value, perm, access: String
        var section: ConfigSection
        init(_ entry: ConfigEntry) {
            (name, value, perm, access, section) = (entry.name, entry.value, entry.perm, entry.access, entry.section)
        }
    }

    static func contents(_ document: ConfigDocument) -> Set<Content> { Set(document.entries.map(Content.init)) }

    @Test func layoutIsTheUTGOne() {
        let xml = ConfigParser.renderXML(
            initial: [
                ConfigEntry(name: "CFG_ROOT_CERTIFICATE_PATH1", value: "https://p/ca.pem", section: .initial),
                ConfigEntry(name: "CFG_STANDARD_FILE_PATH", value: "http://p/{MAC}.cfg", section: .initial),
            ],
            device: [
                ConfigEntry(name: "SIP_AUTHID_2", value: "1002"),
                ConfigEntry(name: "CFG_FILE_KEY", value: "k", perm: "!", access: "A"),
                ConfigEntry(name: "SIP_AUTHID_1", value: "1001", perm: "!"),
                ConfigEntry(name: "NOT_PER_LINE_1", value: "x"),
            ],
            perLineNames: Self.perLineNames
        )
        #expect(
            xml == """
                <PANASIPPhoneConfig>
                  <Initial>
                    <CfgFiles>
                      <CFG_STANDARD_FILE_PATH>http://p/{MAC}.cfg</CFG_STANDARD_FILE_PATH>
                    </CfgFiles>
                    <Certs>
                      <CFG_ROOT_CERTIFICATE_PATH1>https://p/ca.pem</CFG_ROOT_CERTIFICATE_PATH1>
                    </Certs>
                  </Initial>
                  <Device>
                    <CFG_FILE_KEY perm="!" access="A">k</CFG_FILE_KEY>
                    <NOT_PER_LINE_1>x</NOT_PER_LINE_1>
                    <Lines>
                      <Line idx="1">
                        <SIP_AUTHID perm="!">1001</SIP_AUTHID>
                      </Line>
                      <Line idx="2">
                        <SIP_AUTHID>1002</SIP_AUTHID>
                      </Line>
                    </Lines>
                  </Device>
                </PANASIPPhoneConfig>

                """
        )
    }

    @Test func nothingToWriteIsAnEmptyRoot() throws {
        let xml = ConfigParser.renderXML(initial: [], device: [], perLineNames: [])
        #expect(xml == "<PANASIPPhoneConfig>\n</PANASIPPhoneConfig>\n")
        let document = try parse(xml)
        #expect(document.entries.isEmpty && !document.hasInitialSection)
    }

    @Test func realisticDeviceFileRoundTrips() throws {
        let original = try parse(XMLParsingTests.deviceFile)
        let xml = ConfigParser.renderXML(
            initial: [],
            device: original.entries,
            perLineNames: Self.perLineNames
        )
        let reparsed = try parse(xml)
        #expect(Self.contents(reparsed) == Self.contents(original))
        #expect(reparsed.device.count == 15)
        #expect(xml.contains("<Line idx=\"2\">"))
        #expect(!reparsed.hasInitialSection)
    }

    @Test func initialFileRoundTrips() throws {
        let initial = [
            ConfigEntry(name: "CFG_STANDARD_FILE_PATH", value: "http://p/Config{MAC}.cfg", section: .initial),
            ConfigEntry(name: "CFG_PRODUCT_FILE_PATH", value: "", section: .initial),
            ConfigEntry(name: "CFG_MASTER_FILE_PATH", value: "tftp://p/m.cfg", section: .initial),
            ConfigEntry(name: "CFG_ROOT_CERTIFICATE_PATH3", value: "https://p/3.pem", section: .initial),
            ConfigEntry(name: "CFG_OTHER", value: "o", perm: "R", section: .initial),
        ]
        let document = try parse(ConfigParser.renderXML(initial: initial, device: [], perLineNames: []))
        #expect(document.hasInitialSection)
        #expect(Self.contents(document) == Set(initial.map(Content.init)))
    }

    @Test(arguments: [
        "a & b < c > d \"e\" 'f'", "  leading and trailing  ", "line1\nline2", "crlf\r\nend", "lone\rcr", "tab\there",
        "]]>", "&amp; stays literal", "日本語 😀", "",
    ])
    func awkwardValuesRoundTrip(value: String) throws {
        let entry = ConfigEntry(name: "V", value: value, perm: value, access: "<\"&\t\n\r>")
        let document = try parse(ConfigParser.renderXML(initial: [], device: [entry], perLineNames: []))
        #expect(document.device["V"].map(Content.init) == Content(entry))
    }

    @Test func controlCharactersBecomeReplacementCharacters() throws {
        let xml = ConfigParser.renderXML(
            initial: [],
            device: [ConfigEntry(name: "V", value: "a\u{1}b\u{1B}")],
            perLineNames: []
        )
        #expect(try parse(xml).device["V"]?.value == "a\u{FFFD}b\u{FFFD}")
    }

    @Test func nameThatIsNotAnElementNameIsLeftOutAsAComment() throws {
        let xml = ConfigParser.renderXML(
            initial: [],
            device: [ConfigEntry(name: "1BAD--NAME", value: "x"), ConfigEntry(name: "GOOD", value: "y")],
            perLineNames: []
        )
        #expect(xml.contains("<!-- left out: 1BAD- -NAME is not an XML element name -->"))
        let document = try parse(xml)
        #expect(document.device.keys.sorted() == ["GOOD"])
    }

    @Test func standardFormatFileConvertsToXML() throws {
        let text = try parse(
            standardFormat([
                header, "CFG_PRODUCT_FILE_PATH=\"http://p/{MODEL}.cfg\"", "SIP_URI_3=\"sip:3@p\"",
                "SYSLOG_PORT=\"514\"", "SIP_PASS_12=\"a<b\"",
            ]),
            accepting: [.text]
        )
        let xml = ConfigParser.renderXML(
            initial: Array(text.initial.values),
            device: text.entries.filter { $0.section == .device },
            perLineNames: Self.perLineNames
        )
        #expect(xml.contains("<Line idx=\"12\">"))
        let document = try parse(xml)
        #expect(Self.contents(document) == Self.contents(text))
    }
}
