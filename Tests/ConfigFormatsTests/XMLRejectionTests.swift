// spec §2/§6: files that are invalid, with the file, the line and the problem named.

import ConfigFormats
import Testing

@Suite("XML files that are rejected")
struct XMLRejectionTests {
    /// The XML example of the administrator guide, section 2.5, verbatim (seed): an unclosed
    /// `</CFG_PRODUCT_FILE_PATH` and a doubled `</CfgFiles>`, and the `http:/prov.com` typo.
    static let guideExample = """
        <PANASIPPhoneConfig>
        <Initial>
        <CfgFiles>
        <CFG_STANDARD_FILE_PATH>http://prov.com/Config{MAC}.cfg</CFG_STANDARD_FILE_PATH>
        <CFG_PRODUCT_FILE_PATH>http:/prov.com/Config{MODEL}.cfg</CFG_PRODUCT_FILE_PATH
        <CFG_MASTER_FILE_PATH>http://prov.com/ConfigCom.cfg</CFG_MASTER_FILE_PATH>
        </CfgFiles>
        </CfgFiles>
        </Initial>
        </PANASIPPhoneConfig>

        """

    @Test func guideExampleIsRejectedAtTheUnclosedTag() throws {
        let error = try #require(parseError(Self.guideExample))
        #expect(error.file == testFile)
        #expect(error.line == 5)
        #expect(error.kind == .malformed)
        #expect(
            error.reason
                == "not well-formed XML: the end tag </CFG_PRODUCT_FILE_PATH is not closed: add '>' right after the "
                + "name (libxml2: expected '>')"
        )
        #expect(error.description == "\(testFile):5: \(error.reason)")
    }

    @Test func guideExampleWithTheTagClosedStillFailsOnTheDoubledEndTag() throws {
        let fixed = Self.guideExample.replacing(
            "</CFG_PRODUCT_FILE_PATH\n",
            with: "</CFG_PRODUCT_FILE_PATH>\n",
            maxReplacements: 1
        )
        let error = try #require(parseError(fixed))
        #expect(error.line == 8)
        #expect(error.reason.contains("the end tag </CfgFiles> does not match the open element <Initial> from line 2"))
    }

    @Test func wrongRootIsNamed() throws {
        let error = try #require(
            parseError("<!-- exported -->\n<PanasonicConfig>\n<A>1</A>\n</PanasonicConfig>\n")
        )
        #expect(error.line == 2)
        #expect(error.kind == .wrongRoot)
        #expect(
            error.reason
                == "the root element is <PanasonicConfig>; a configuration file's root element must be "
                + "<PANASIPPhoneConfig>"
        )
    }

    @Test func rootNameIsCaseSensitive() throws {
        let error = try #require(parseError("<PanaSIPPhoneConfig/>"))
        #expect(error.reason.contains("<PanaSIPPhoneConfig>"))
    }

    /// spec §2 / STYLE: no DOCTYPE at all, so no entity expansion (billion laughs) and no DTD or entity fetched.
    @Test(
        arguments: [
            (
                """
                <?xml version="1.0"?>
                <!DOCTYPE lolz [
                 <!ENTITY lol "lol">
                 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
                 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
                 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
                 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
                 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
                 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
                 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
                 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
                 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
                ]>
                <PANASIPPhoneConfig><Device><SIP_URI_1>&lol9;</SIP_URI_1></Device></PANASIPPhoneConfig>
                """, 2
            ),
            (
                """
                <!DOCTYPE PANASIPPhoneConfig [<!ENTITY pw SYSTEM "file:///etc/passwd">]>
                <PANASIPPhoneConfig><A>&pw;</A></PANASIPPhoneConfig>
                """, 1
            ),
            ("\n\n<!DOCTYPE PANASIPPhoneConfig SYSTEM \"http://evil.example/x.dtd\">\n<PANASIPPhoneConfig/>", 3),
            ("<!DOCTYPE PANASIPPhoneConfig>\n<PANASIPPhoneConfig/>", 1),
        ])
    func doctypeIsRejected(file: String, line: Int) throws {
        let error = try #require(parseError(file))
        #expect(error.kind == .doctype)
        #expect(error.line == line)
        #expect(error.reason.hasPrefix("DOCTYPE is not allowed in a configuration file"))
    }

    @Test func undeclaredEntityIsNotWellFormed() throws {
        let error = try #require(parseError("<PANASIPPhoneConfig>\n<A>&lol9;</A>\n</PANASIPPhoneConfig>"))
        #expect(error.line == 2)
        #expect(error.kind == .malformed)
        #expect(error.reason.contains("Entity 'lol9' not defined"))
    }

    /// libxml2's common complaints, each turned into words that name the fix, at the right line.
    @Test(
        arguments: [
            (
                "<PANASIPPhoneConfig>\n<URL>http://p/x?a=1&b=2</URL>\n</PANASIPPhoneConfig>", 2,
                "a '&' in a value must be written &amp;"
            ),
            ("<PANASIPPhoneConfig>\n<A>x & y</A>\n</PANASIPPhoneConfig>", 2, "a '&' in a value must be written &amp;"),
            (
                "<PANASIPPhoneConfig>\n<A>1 < 2</A>\n</PANASIPPhoneConfig>", 2,
                "a '<' that does not start a tag: write '<' in a value as &lt;"
            ),
            (
                "<PANASIPPhoneConfig>\n<Device>\n<A>1</A>\n", 4,
                "the element <Device> from line 2 is never closed: add </Device>"
            ),
            (
                "<PANASIPPhoneConfig>\n<A>1</B>\n</PANASIPPhoneConfig>", 2,
                "the end tag </B> does not match the open element <A> from line 2"
            ),
            ("<PANASIPPhoneConfig>\n<A perm=R>1</A>\n</PANASIPPhoneConfig>", 2, "attribute values must be in quotes"),
            (
                "<PANASIPPhoneConfig>\n<A perm=\"R\" perm=\"!\">1</A>\n</PANASIPPhoneConfig>", 2,
                "the attribute perm appears twice in one tag"
            ),
            (
                "\n<?xml version=\"1.0\"?>\n<PANASIPPhoneConfig/>", 2,
                "the <?xml ...?> declaration must be the very first thing in the file"
            ),
            (
                "<PANASIPPhoneConfig>\n</PANASIPPhoneConfig>\n</PANASIPPhoneConfig>\n", 3,
                "there is more after the end of the root element"
            ),
            ("<PANASIPPhoneConfig>\n<A>1</A>\n<B>2</B\n\n</PANASIPPhoneConfig>", 3, "the end tag </B is not closed"),
            (
                "<PANASIPPhoneConfig>\n<A perm=\"R\"\n", 2,
                "the start tag <A is not closed: add '>' after its attributes"
            ),
            ("<PANASIPPhoneConfig>\n<A>\u{1}</A>\n</PANASIPPhoneConfig>", 2, "a character XML does not allow"),
        ])
    func notWellFormedNamesTheProblem(file: String, line: Int, expected: String) throws {
        let error = try #require(parseError(file))
        #expect(error.kind == .malformed)
        #expect(error.line == line)
        #expect(error.reason.hasPrefix("not well-formed XML: "))
        #expect(error.reason.contains(expected), "\(error.reason)")
        #expect(!error.reason.contains("\n"))
    }

    @Test func invalidUTF8IsRejectedWithItsLine() throws {
        let bytes = Array("<PANASIPPhoneConfig>\n<A>caf".utf8) + [0xE9] + Array("</A>\n</PANASIPPhoneConfig>".utf8)
        let error = try #require(parseError(bytes))
        #expect(error.line == 2)
        #expect(error.reason.contains("the file is not valid UTF-8: save it as UTF-8"))
        #expect(error.reason.contains("0xE9"))
    }

    @Test(arguments: [
        ("<Line>", "<Line> has no idx attribute; write <Line idx=\"1\"> for line 1"),
        ("<Line idx=\"x\">", "<Line idx=\"x\">: idx must be a whole number from 1 to 99"),
        ("<Line idx=\"\">", "<Line idx=\"\">: idx must be a whole number from 1 to 99"),
        ("<Line idx=\"0\">", "<Line idx=\"0\">: idx must be a whole number from 1 to 99"),
        ("<Line idx=\"100\">", "<Line idx=\"100\">: idx must be a whole number from 1 to 99"),
        ("<Line idx=\"-1\">", "<Line idx=\"-1\">: idx must be a whole number from 1 to 99"),
        ("<Line idx=\" 1\">", "<Line idx=\" 1\">: idx must be a whole number from 1 to 99"),
        ("<Line idx=\"1.0\">", "<Line idx=\"1.0\">: idx must be a whole number from 1 to 99"),
        (
            "<Line idx=\"99999999999999999999\">",
            "<Line idx=\"99999999999999999999\">: idx must be a whole number from 1 to 99"
        ),
    ])
    func lineIndexMustBe1To99(openTag: String, expected: String) throws {
        let file = """
            <PANASIPPhoneConfig>
            <Device>
            <Lines>
            <Line idx="1"><SIP_AUTHID>ok</SIP_AUTHID></Line>
            \(openTag)
            <SIP_AUTHID>1001</SIP_AUTHID>
            </Line>
            </Lines>
            </Device>
            </PANASIPPhoneConfig>
            """
        let error = try #require(parseError(file))
        #expect(error.line == 5)
        #expect(error.kind == .structure)
        #expect(error.reason.hasPrefix(expected))
    }

    @Test func emptyLineWithoutIndexIsStillRejected() throws {
        let error = try #require(parseError("<PANASIPPhoneConfig>\n<Lines><Line/></Lines>\n</PANASIPPhoneConfig>"))
        #expect(error.line == 2)
        #expect(error.reason.contains("no idx attribute"))
    }

    @Test func lineInsideLineIsRejected() throws {
        let error = try #require(
            parseError(
                "<PANASIPPhoneConfig>\n<Line idx=\"1\">\n<Line idx=\"2\"><A>1</A></Line>\n</Line>\n"
                    + "</PANASIPPhoneConfig>"
            )
        )
        #expect(error.line == 3)
        #expect(
            error.reason == "<Line idx=\"2\"> is inside <Line idx=\"1\"> from line 2; close the first <Line> before "
                + "opening the next"
        )
    }

    @Test func oversizeFileIsRejectedWholeBeforeParsing() throws {
        let body = "<PANASIPPhoneConfig><A>1</A></PANASIPPhoneConfig>\n"
        let file = body + String(repeating: "<!-- padding -->\n", count: 14_000)
        let bytes = Array(file.utf8) + Array(repeating: UInt8(ascii: " "), count: 245_761 - file.utf8.count)
        #expect(bytes.count == 245_761)
        let error = try #require(parseError(bytes))
        #expect(error.kind == .tooLarge)
        #expect(error.line == nil)
        #expect(error.reason == "file is 245761 bytes; the limit for XML files is 245760 bytes")
        #expect(error.description == "\(testFile): file is 245761 bytes; the limit for XML files is 245760 bytes")
        // One byte less is fine.
        let document = try ConfigParser.parse(Array(bytes.dropLast()), file: testFile)
        #expect(document.device["A"]?.value == "1")
    }

    @Test func customLimitApplies() throws {
        let error = try #require(parseError("<PANASIPPhoneConfig/>", limits: [.xml: 10]))
        #expect(error.reason == "file is 21 bytes; the limit for XML files is 10 bytes")
    }

    @Test(arguments: [("", "empty file"), (" \r\n\t\n", "empty file (only whitespace)")])
    func emptyFileIsInvalid(file: String, reason: String) throws {
        let error = try #require(parseError(file))
        #expect(error.kind == .empty)
        #expect(error.reason == reason)
        #expect(error.line == nil)
    }

    @Test func encryptedFileIsNamedAsSuch() throws {
        let error = try #require(parseError("U2FsdGVkX18BAgMEBQYHCBsc0vVMoxi4ozQdEbcKwwvQ/oGyYT6aoXKSWalVVjY3\n"))
        #expect(error.kind == .unrecognised)
        #expect(error.reason.contains("the file is encrypted"))
    }

    @Test func somethingElseIsNotAConfigurationFile() throws {
        let error = try #require(parseError("\nHTTP/1.1 404 Not Found\r\n"))
        #expect(error.line == 2)
        #expect(error.kind == .unrecognised)
        #expect(
            error.reason
                == "not a configuration file: expected XML starting with '<'; it starts with 'HTTP/1.1 404 Not Found'"
        )
    }

    @Test func utf16IsNamed() throws {
        let error = try #require(parseError([0xFF, 0xFE, 0x3C, 0x00]))
        #expect(error.reason == "the file is UTF-16; save it as UTF-8")
    }

    @Test func xmlIsRefusedWhenOnlyTextIsAccepted() throws {
        let error = try #require(parseError("<PANASIPPhoneConfig/>", accepting: [.text]))
        #expect(error.kind == .notAccepted)
        #expect(error.reason == "this model accepts text; the file is XML")
    }
}
