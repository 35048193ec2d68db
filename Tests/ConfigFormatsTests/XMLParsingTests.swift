// spec §2: what a well-formed <PANASIPPhoneConfig> file gives.

import ConfigFormats
import Testing

@Suite("XML files that parse")
struct XMLParsingTests {
    /// A KX-UTG300 device file as real servers write them: groups, two lines, perm and access attributes.
    static let deviceFile = """
        <PANASIPPhoneConfig>
          <Device>
            <System>
              <Prov>
                <PROVISION_ENABLE perm="R">Y</PROVISION_ENABLE>
                <CFG_CYCLIC>Y</CFG_CYCLIC>
                <CFG_CYCLIC_INTVL>1440</CFG_CYCLIC_INTVL>
                <CFG_RESYNC_TIME></CFG_RESYNC_TIME>
                <CFG_FILE_KEY perm="!" access="A">12341234abcdabcd12341234abcdabcd</CFG_FILE_KEY>
              </Prov>
            </System>
            <Network>
              <HTTP>
                <HTTP_USER_AGENT>Panasonic_{MODEL}/{fwver} ({mac})</HTTP_USER_AGENT>
                <HTTP_AUTH_ID access="AU">prov</HTTP_AUTH_ID>
                <HTTP_AUTH_PASSWORD perm="!R" access="A">s3cr&amp;t</HTTP_AUTH_PASSWORD>
              </HTTP>
            </Network>
            <Lines>
              <Line idx="1">
                <Sip>
                  <SIP_AUTHID perm="!">1001</SIP_AUTHID>
                  <SIP_PASS perm="!" access="A">pw 1</SIP_PASS>
                  <SIP_RGSTR_ADDR>pbx.example.com</SIP_RGSTR_ADDR>
                </Sip>
                <PHONE_NUMBER>1001</PHONE_NUMBER>
              </Line>
              <Line idx="2">
                <Sip>
                  <SIP_AUTHID>1002</SIP_AUTHID>
                  <SIP_RGSTR_PORT>5060</SIP_RGSTR_PORT>
                </Sip>
                <LINE_ENABLE perm="RW"/>
              </Line>
            </Lines>
          </Device>
        </PANASIPPhoneConfig>

        """

    @Test func deviceFileGivesEveryLeafWithLineAndAttributes() throws {
        let document = try parse(Self.deviceFile)
        #expect(document.format == .xml)
        #expect(document.initial.isEmpty)
        #expect(!document.hasInitialSection)
        #expect(document.warnings.isEmpty)
        #expect(
            document.entries == [
                ConfigEntry(name: "PROVISION_ENABLE", value: "Y", perm: "R", line: 5),
                ConfigEntry(name: "CFG_CYCLIC", value: "Y", line: 6),
                ConfigEntry(name: "CFG_CYCLIC_INTVL", value: "1440", line: 7),
                ConfigEntry(name: "CFG_RESYNC_TIME", value: "", line: 8),
                ConfigEntry(
                    name: "CFG_FILE_KEY",
                    value: "12341234abcdabcd12341234abcdabcd",
                    perm: "!",
                    access: "A",
                    line: 9
                ),
                ConfigEntry(name: "HTTP_USER_AGENT", value: "Panasonic_{MODEL}/{fwver} ({mac})", line: 14),
                ConfigEntry(name: "HTTP_AUTH_ID", value: "prov", access: "AU", line: 15),
                ConfigEntry(name: "HTTP_AUTH_PASSWORD", value: "s3cr&t", perm: "!R", access: "A", line: 16),
                ConfigEntry(name: "SIP_AUTHID_1", value: "1001", perm: "!", line: 22),
                ConfigEntry(name: "SIP_PASS_1", value: "pw 1", perm: "!", access: "A", line: 23),
                ConfigEntry(name: "SIP_RGSTR_ADDR_1", value: "pbx.example.com", line: 24),
                ConfigEntry(name: "PHONE_NUMBER_1", value: "1001", line: 26),
                ConfigEntry(name: "SIP_AUTHID_2", value: "1002", line: 30),
                ConfigEntry(name: "SIP_RGSTR_PORT_2", value: "5060", line: 31),
                ConfigEntry(name: "LINE_ENABLE_2", value: "", perm: "RW", line: 33),
            ]
        )
        #expect(document.device["SIP_AUTHID_2"]?.value == "1002")
        #expect(document.device.values.allSatisfy { $0.section == .device })
    }

    @Test func initialFileGoesToInitial() throws {
        let document = try parse(
            """
            <PANASIPPhoneConfig>
            <Initial>
            <CfgFiles>
            <CFG_STANDARD_FILE_PATH>http://prov.com/Config{MAC}.cfg</CFG_STANDARD_FILE_PATH>
            <CFG_PRODUCT_FILE_PATH>http://prov.com/Config{MODEL}.cfg</CFG_PRODUCT_FILE_PATH>
            <CFG_MASTER_FILE_PATH></CFG_MASTER_FILE_PATH>
            </CfgFiles>
            <Certs>
            <CFG_ROOT_CERTIFICATE_PATH1>https://prov.com/root.pem</CFG_ROOT_CERTIFICATE_PATH1>
            </Certs>
            </Initial>
            <Device>
            <CFG_CYCLIC>N</CFG_CYCLIC>
            </Device>
            </PANASIPPhoneConfig>
            """
        )
        #expect(document.hasInitialSection)
        #expect(
            document.initial == [
                "CFG_STANDARD_FILE_PATH": ConfigEntry(
                    name: "CFG_STANDARD_FILE_PATH",
                    value: "http://prov.com/Config{MAC}.cfg",
                    line: 4,
                    section: .initial
                ),
                "CFG_PRODUCT_FILE_PATH": ConfigEntry(
                    name: "CFG_PRODUCT_FILE_PATH",
                    value: "http://prov.com/Config{MODEL}.cfg",
                    line: 5,
                    section: .initial
                ),
                "CFG_MASTER_FILE_PATH": ConfigEntry(
                    name: "CFG_MASTER_FILE_PATH",
                    value: "",
                    line: 6,
                    section: .initial
                ),
                "CFG_ROOT_CERTIFICATE_PATH1": ConfigEntry(
                    name: "CFG_ROOT_CERTIFICATE_PATH1",
                    value: "https://prov.com/root.pem",
                    line: 9,
                    section: .initial
                ),
            ]
        )
        // spec §2 [decision]: an initial file may carry a <Device> section too.
        #expect(document.device == ["CFG_CYCLIC": ConfigEntry(name: "CFG_CYCLIC", value: "N", line: 13)])
        #expect(document.entries.map(\.line) == [4, 5, 6, 9, 13])
    }

    @Test func emptyInitialElementStillMarksTheSection() throws {
        let document = try parse("<PANASIPPhoneConfig><Initial/><Device/></PANASIPPhoneConfig>")
        #expect(document.hasInitialSection)
        #expect(document.entries.isEmpty)
    }

    @Test func sameNameTwiceTheLastWins() throws {
        // spec §2 [doc]: in XML the last one wins.
        let document = try parse(
            """
            <PANASIPPhoneConfig>
            <Device>
            <NTP_ADDR>first.example</NTP_ADDR>
            <System><NTP_ADDR perm="R">second.example</NTP_ADDR></System>
            <Lines><Line idx="1"><SIP_AUTHID>a</SIP_AUTHID></Line><Line idx="1"><SIP_AUTHID>b</SIP_AUTHID></Line>
            </Lines>
            </Device>
            </PANASIPPhoneConfig>
            """
        )
        #expect(
            document.device["NTP_ADDR"] == ConfigEntry(name: "NTP_ADDR", value: "second.example", perm: "R", line: 4)
        )
        #expect(document.device["SIP_AUTHID_1"]?.value == "b")
        #expect(document.device.count == 2)
        #expect(
            document.warnings == [
                ConfigWarning(
                    line: 4,
                    message: "NTP_ADDR is set again; this value replaces the one from line 3 (in XML the last one wins)"
                ),
                ConfigWarning(
                    line: 5,
                    message: "SIP_AUTHID_1 is set again; this value replaces the one from line 5 (in XML the last one "
                        + "wins)"
                ),
            ]
        )
    }

    @Test func xmlDeclarationIsAccepted() throws {
        let document = try parse(
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <PANASIPPhoneConfig><Device><TIME_ZONE>540</TIME_ZONE></Device></PANASIPPhoneConfig>
            """
        )
        #expect(document.entries == [ConfigEntry(name: "TIME_ZONE", value: "540", line: 2)])
    }

    @Test func declaredLatin1IsDecodedToUTF8() throws {
        var bytes = Array("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<PANASIPPhoneConfig><DISPLAY_NAME>".utf8)
        bytes += [0x4A, 0xE9, 0x72, 0xF4, 0x6D, 0x65]  // "Jérôme" in Latin-1
        bytes += Array("</DISPLAY_NAME></PANASIPPhoneConfig>".utf8)
        let document = try ConfigParser.parse(bytes, file: testFile)
        #expect(document.device["DISPLAY_NAME"]?.value == "Jérôme")
    }

    @Test func utf8ByteOrderMarkIsAccepted() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("<PANASIPPhoneConfig><A>1</A></PANASIPPhoneConfig>".utf8)
        let document = try ConfigParser.parse(bytes, file: testFile)
        #expect(document.device["A"]?.value == "1")
    }

    /// spec §2: the value is the element's text exactly: no trimming, entities and CDATA decoded, comments skipped.
    @Test(
        arguments: [
            ("<V></V>", ""),
            ("<V/>", ""),
            ("<V>  spaced out  </V>", "  spaced out  "),
            ("<V>a\n  b</V>", "a\n  b"),
            ("<V><![CDATA[a<b>&c]]></V>", "a<b>&c"),
            ("<V>x<![CDATA[<y>]]>z</V>", "x<y>z"),
            ("<V>a<!-- note -->b</V>", "ab"),
            ("<V>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;</V>", "&<>\"'AB"),
            ("<V>日本語 ünïcode</V>", "日本語 ünïcode"),
            ("<V><![CDATA[]]></V>", ""),
        ])
    func leafValueIsExact(element: String, value: String) throws {
        let document = try parse("<PANASIPPhoneConfig>\n<Device>\(element)</Device>\n</PANASIPPhoneConfig>")
        #expect(document.device == ["V": ConfigEntry(name: "V", value: value, line: 2)])
    }

    @Test func attributesAreKeptVerbatim() throws {
        let document = try parse(
            #"<PANASIPPhoneConfig><A perm=" !R " access="a&amp;u" other="x">1</A></PANASIPPhoneConfig>"#
        )
        #expect(document.device["A"] == ConfigEntry(name: "A", value: "1", perm: " !R ", access: "a&u", line: 1))
    }

    @Test func leafDirectlyUnderTheRootIsADeviceParameter() throws {
        let document = try parse("<PANASIPPhoneConfig><SYSLOG_PORT>514</SYSLOG_PORT></PANASIPPhoneConfig>")
        #expect(document.device["SYSLOG_PORT"]?.value == "514")
    }

    @Test func leafAnyDepthInsideLineIsPerLine() throws {
        let document = try parse(
            """
            <PANASIPPhoneConfig><Device><Lines><Line idx="07"><A><B><SIP_URI>sip:7@pbx</SIP_URI></B></A></Line>
            <Line idx="99"><REG_EXPIRE_TIME>3600</REG_EXPIRE_TIME></Line></Lines></Device></PANASIPPhoneConfig>
            """
        )
        #expect(document.device["SIP_URI_7"]?.value == "sip:7@pbx")
        #expect(
            document.device["REG_EXPIRE_TIME_99"] == ConfigEntry(name: "REG_EXPIRE_TIME_99", value: "3600", line: 2)
        )
    }

    @Test func strayTextBetweenElementsIsIgnoredWithAWarning() throws {
        let document = try parse(
            """
            <PANASIPPhoneConfig>
            <Device>
            oops
            <A>1</A>
            </Device>
            </PANASIPPhoneConfig>
            """
        )
        #expect(document.device["A"]?.value == "1")
        #expect(
            document.warnings == [
                ConfigWarning(
                    line: 3,
                    message: "text 'oops' inside <Device> is ignored: only an element without child elements holds a "
                        + "value"
                )
            ]
        )
    }

    @Test func commentsAndProcessingInstructionsAreIgnored() throws {
        let document = try parse(
            "<!-- made by a server --><PANASIPPhoneConfig><?pi x?><!-- <A>1</A> --><B>2</B></PANASIPPhoneConfig>"
        )
        #expect(document.entries == [ConfigEntry(name: "B", value: "2", line: 1)])
    }

    @Test func limitExactlyReachedIsAccepted() throws {
        let body = "<PANASIPPhoneConfig><A>1</A></PANASIPPhoneConfig>"
        let padding = String(repeating: " ", count: 100 - body.utf8.count)
        let document = try parse(body + padding, limits: [.xml: 100])
        #expect(document.device["A"]?.value == "1")
    }
}

@Suite("XML details")
struct XMLDetailTests {
    @Test func ampersandsInAttributesAreDecodedExactlyOnce() throws {
        let document = try parse(
            #"<PANASIPPhoneConfig><A perm="&#38;" access="&amp;#38;">1</A>"#
                + #"<B access="&lt;&#x26;&gt;"/></PANASIPPhoneConfig>"#
        )
        #expect(document.device["A"]?.perm == "&")
        #expect(document.device["A"]?.access == "&#38;")
        #expect(document.device["B"]?.access == "<&>")
    }

    @Test func strayTextAfterAChildIsReportedToo() throws {
        let document = try parse(
            "<PANASIPPhoneConfig>\n<Device><A>1</A>\n\n  junk &amp; more\n</Device>\n</PANASIPPhoneConfig>"
        )
        #expect(document.device["A"]?.value == "1")
        #expect(document.warnings.map(\.line) == [4])
        #expect(document.warnings.first?.message.hasPrefix("text 'junk & more' inside <Device> is ignored") == true)
    }

    @Test func prefixedNamesKeepTheirPrefix() throws {
        let document = try parse(#"<PANASIPPhoneConfig xmlns:p="urn:x"><p:A>1</p:A></PANASIPPhoneConfig>"#)
        #expect(Array(document.device.keys) == ["p:A"])
        let error = try #require(parseError(#"<p:PANASIPPhoneConfig xmlns:p="urn:x"/>"#))
        #expect(error.kind == .wrongRoot)
        #expect(error.reason.hasPrefix("the root element is <p:PANASIPPhoneConfig>"))
    }

    @Test func lineNumbersPast65535AreExact() throws {
        let file =
            "<PANASIPPhoneConfig>" + String(repeating: "\n", count: 70_000) + "<A>1</A>\n<B>2</B></PANASIPPhoneConfig>"
        let document = try parse(file)
        #expect(document.device["A"]?.line == 70_001)
        #expect(document.device["B"]?.line == 70_002)
        let error = try #require(parseError(file.replacing("<B>2</B>", with: "<B>2</C>")))
        #expect(error.line == 70_002)
    }

    @Test func parsesConcurrently() async throws {
        let expected = try parse(XMLParsingTests.deviceFile)
        let bytes = Array(XMLParsingTests.deviceFile.utf8)
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    (0..<50).allSatisfy { _ in (try? ConfigParser.parse(bytes, file: testFile)) == expected }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == Array(repeating: true, count: 8))
    }
}
