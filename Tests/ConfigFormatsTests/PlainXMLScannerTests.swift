// The plain-XML scanner against libxml2: whenever the scanner returns a document, libxml2 must accept the same bytes
// and make the same document (entries, values, perm/access, lines, sections, warnings); and the scanner must really
// take the plain files provisioning servers write, or the fleet silently loses its fast path.

import ConfigFormats
import Foundation
import PhoneCore
import Testing

/// nil when the scanner gave up; otherwise records an issue unless libxml2 makes the same document.
@discardableResult
private func agree(
    _ bytes: [UInt8],
    _ label: String,
    sourceLocation: SourceLocation = #_sourceLocation
)
    -> ConfigDocument?
{
    // The scanner's document is made of its entries in file order (what a fleet phone's own file uses).
    guard let scanned = ConfigParser.scanPlainXML(bytes) else { return nil }
    do {
        let reference = try ConfigParser.parseXMLWithLibXML2(bytes, file: testFile)
        #expect(scanned == reference, "\(label): the scanner and libxml2 disagree", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(label): the scanner accepted what libxml2 refuses: \(error)", sourceLocation: sourceLocation)
    }
    return scanned
}

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The example tree and the XML seeds of the fuzz corpus.
private func sampleFiles() throws -> [(String, [UInt8])] {
    var out: [(String, [UInt8])] = []
    for dir in ["examples/prov", "Fuzz/Corpus/config-xml"] {
        let url = repository.appendingPathComponent(dir)
        for name in try FileManager.default.contentsOfDirectory(atPath: url.path).sorted() {
            out.append(("\(dir)/\(name)", [UInt8](try Data(contentsOf: url.appendingPathComponent(name)))))
        }
    }
    return out
}

/// The file with every LF preceded by a CR, as Windows tools write it.
private func crlf(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + bytes.count / 16)
    for byte in bytes {
        if byte == 0x0A { out.append(0x0D) }
        out.append(byte)
    }
    return out
}

@Suite("Plain XML scanner")
struct PlainXMLScannerTests {
    @Test("the example tree is read by the scanner, exactly as libxml2 reads it")
    func exampleTreeTakesTheFastPath() throws {
        let files = try sampleFiles().filter { $0.0.hasPrefix("examples/prov") }
        #expect(files.count >= 4)
        for (name, bytes) in files {
            let document = agree(bytes, name)
            #expect(document != nil, "\(name): plain XML, but the scanner gave up")
            #expect((document?.device.count ?? 0) + (document?.initial.count ?? 0) > 0, "\(name)")
            // The same file made on Windows: CRLF line ends, which XML reads as LF.
            let windows = agree(crlf(bytes), "\(name) with CRLF line ends")
            #expect(windows != nil, "\(name) with CRLF line ends: plain XML, but the scanner gave up")
            #expect(windows == document, "\(name): CRLF line ends must make the same document as LF ones")
        }
    }

    @Test("every XML seed of the fuzz corpus: the scanner agrees with libxml2 or leaves the file to it")
    func corpusAgrees() throws {
        var taken = 0
        for (name, bytes) in try sampleFiles() where agree(bytes, name) != nil { taken += 1 }
        #expect(taken >= 4)
    }

    @Test(
        "plain constructs the scanner reads itself, as libxml2 does",
        arguments: [
            // declaration variants, comments around and inside, entities, self-closing, multi-line tags
            "<?xml version='1.0' encoding='UTF-8' standalone=\"yes\" ?>\n<PANASIPPhoneConfig><A>1</A></PANASIPPhoneConfig>",
            "<!-- head -->\n<PANASIPPhoneConfig>\n<!-- in -->\n<Device>\n<A>x<!--c-->y</A>\n</Device></PANASIPPhoneConfig>\n<!-- tail -->\n",
            "<PANASIPPhoneConfig><A>a &amp; b &lt;c&gt; &quot;d&apos;</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A/><B perm=\"!R\" access='AU'/><C perm=\"R\"></C></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig>\n<A\n  perm=\"!\"\n\n>v</A  >\n<B\tperm=\"R\">\n  spaced value \n</B></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><Lines><Line idx=\"01\"><SIP_AUTHID>1</SIP_AUTHID></Line><Line idx=\"99\"><X/></Line></Lines></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><Initial><CFG_STANDARD_FILE_PATH>http://h/{MAC}.cfg</CFG_STANDARD_FILE_PATH></Initial><Device><A>1</A><A>2</A></Device></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig/>",
            // line breaks inside the declaration count, also where an optional part is missing
            "<?xml version=\"1.0\"\n?><PANASIPPhoneConfig><A/></PANASIPPhoneConfig>",
            "<?xml version=\"1.0\"\n standalone=\"yes\"?><PANASIPPhoneConfig><A/></PANASIPPhoneConfig>",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"\n?>\n<PANASIPPhoneConfig>\n<A>1</A>\n<A>2</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><Initial/><Device></Device><Line idx=\"3\"></Line></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><a.b-c_d>]] > ]</a.b-c_d><!----></PANASIPPhoneConfig>",
            // UTF-8 text and comments: two-, three- and four-byte characters, the last ones below U+FFFE and U+10FFFF
            "<PANASIPPhoneConfig><!-- Grüße, 日本 --><DISPLAY_NAME>Jürgen Müller ☎ 😀 \u{A0}\u{FFFD}\u{10FFFF}</DISPLAY_NAME></PANASIPPhoneConfig>",
            // CRLF line ends (Windows-made files): between tags, inside tags, in the declaration and in comments; in a
            // value (read as LF), also beside an entity and a comment; and a value that is only a line end
            "<?xml version=\"1.0\"\r\n encoding=\"utf-8\"?>\r\n<PANASIPPhoneConfig>\r\n<A>1</A>\r\n</PANASIPPhoneConfig>\r\n",
            "<PANASIPPhoneConfig>\r\n<A\r\n perm=\"!\"\r\n>v</A\r\n>\r\n<!-- a\r\nb -->\r\n<B/></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><Device>\r\n<A>x\r\ny</A>\r\n<B>a &amp;\r\nb<!--\r\n-->c\r\n</B><C>\r\n</C></Device></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig>\r\n<Lines>\r\n<Line idx=\"2\">\r\n<SIP_AUTHID>7</SIP_AUTHID>\r\n</Line>\r\n</Lines>\r\n<Z>\r\n\r\n</Z></PANASIPPhoneConfig>",
        ]
    )
    func plainConstructs(_ text: String) {
        #expect(agree(Array(text.utf8), text) != nil, "the scanner gave up on plain XML")
    }

    @Test(
        "anything outside plain XML is left to libxml2",
        arguments: [
            // a CR on its own: XML reads it as LF; libxml2 decides (between tags, in a value, at the end, in a comment)
            "<PANASIPPhoneConfig>\r<A>1</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A>1\r</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A>1\r\r\n</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><!-- \r --></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig/>\r",
            "<PANASIPPhoneConfig><A perm=\"a\r\nb\">1</A></PANASIPPhoneConfig>",  // normalised attribute
            "<PANASIPPhoneConfig><A>&#38;</A></PANASIPPhoneConfig>",  // character reference
            "<PANASIPPhoneConfig><A>&nbsp;</A></PANASIPPhoneConfig>",  // undeclared entity: an error
            "<PANASIPPhoneConfig><A><![CDATA[x]]></A></PANASIPPhoneConfig>",
            "<!DOCTYPE x><PANASIPPhoneConfig/>",
            "<PANASIPPhoneConfig><?pi x?></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><p:A xmlns:p=\"u\">1</p:A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A xmlns=\"u\">1</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A>\u{80}</A></PANASIPPhoneConfig>",  // a C1 control
            "<PANASIPPhoneConfig><A>\u{FFFE}</A></PANASIPPhoneConfig>",  // not an XML character
            "<PANASIPPhoneConfig><A>\u{FFFF}</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A perm=\"a\" perm=\"b\">1</A></PANASIPPhoneConfig>",  // duplicate attribute
            "<PANASIPPhoneConfig><A perm=\"a\tb\">1</A></PANASIPPhoneConfig>",  // normalised attribute
            "<PANASIPPhoneConfig><A perm=\"a\"access=\"b\">1</A></PANASIPPhoneConfig>",  // no blank between
            "<PANASIPPhoneConfig><A>1</B></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A>1</A>",
            "<PANASIPPhoneConfig><A>x]]>y</A></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><!-- a -- b --></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><!-- a ---></PANASIPPhoneConfig>",
            "<Other><A>1</A></Other>",  // wrong root: libxml2's reader names it
            "<PANASIPPhoneConfig><Line idx=\"0\"><A/></Line></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><Line idx=\"1\"><Line idx=\"2\"/></Line></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig>stray<A>1</A></PANASIPPhoneConfig>",  // stray text: a warning
            "<PANASIPPhoneConfig><A>1</A></PANASIPPhoneConfig><B/>",
            "<PANASIPPhoneConfig><A>1</A></PANASIPPhoneConfig>junk",
            "\u{FEFF}<PANASIPPhoneConfig/>",
            " <?xml version=\"1.0\"?><PANASIPPhoneConfig/>",
            "<?xml version=\"1.1\"?><PANASIPPhoneConfig/>",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><PANASIPPhoneConfig/>",
            "<?xml encoding=\"utf-8\"?><PANASIPPhoneConfig/>",
            "<PANASIPPhoneConfig><A>\u{0001}</A></PANASIPPhoneConfig>",
            "",
            "   \n",
        ]
    )
    func outsidePlainXML(_ text: String) {
        #expect(ConfigParser.scanPlainXML(Array(text.utf8)) == nil, "the scanner should leave this to libxml2")
    }

    @Test("a file over a megabyte is left to libxml2 (its limits on one value, 10 MB, are not the scanner's to judge)")
    func largeFilesAreLibxml2s() {
        let value = String(repeating: "x", count: 1_000_000)
        #expect(
            ConfigParser.scanPlainXML(Array("<PANASIPPhoneConfig><A>\(value)</A></PANASIPPhoneConfig>".utf8)) == nil
        )
        #expect(ConfigParser.scanPlainXML(Array("<PANASIPPhoneConfig><A>x</A></PANASIPPhoneConfig>".utf8)) != nil)
    }

    @Test("bytes that are not UTF-8 are left to libxml2")
    func notUTF8() {
        let cases: [[UInt8]] = [
            [0xC0, 0x80],  // over-long
            [0xC1, 0xBF],
            [0xE0, 0x80, 0x80],
            [0xED, 0xA0, 0x80],  // a surrogate
            [0xF4, 0x90, 0x80, 0x80],  // past U+10FFFF
            [0xF5, 0x80, 0x80, 0x80],
            [0x80],  // a lone continuation byte
            [0xC3],  // cut short
            [0xE6, 0x97],
            [0xC3, 0x41],
        ]
        for bad in cases {
            let bytes = Array("<PANASIPPhoneConfig><A>x".utf8) + bad + Array("</A></PANASIPPhoneConfig>".utf8)
            #expect(ConfigParser.scanPlainXML(bytes) == nil, "\(bad)")
            let comment = Array("<PANASIPPhoneConfig><!-- ".utf8) + bad + Array(" --></PANASIPPhoneConfig>".utf8)
            #expect(ConfigParser.scanPlainXML(comment) == nil, "\(bad) in a comment")
        }
    }

    @Test("50,000 mutants of the plain sample files: whenever the scanner reads one, libxml2 reads it the same")
    func mutantsAgree() throws {
        let plain = try sampleFiles().map(\.1).filter { $0.count < 64 * 1024 && ConfigParser.scanPlainXML($0) != nil }
        #expect(plain.count >= 4)
        let seeds = plain + plain.map(crlf)  // and the same files with CRLF line ends
        let alphabet = Array("<>/!-?&;#=\"' \n\r\tAxz09_:.[]]".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xED, 0xEF, 0xFF]
        // Whole characters too, so that UTF-8 text reaches the scanner: some XML allows, some it does not.
        let characters = ["ü", "€", "日本", "😀", "\u{A0}", "\u{85}", "\u{FFFD}", "\u{FFFE}", "\u{FFFF}", "\u{10FFFF}"]
            .map { Array($0.utf8) }
        var mix = SplitMix64(seed: 0x5EED)  // the same mutants on every run
        var taken = 0
        for round in 0..<50_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0...mix.below(3) {
                guard !bytes.isEmpty else { break }
                let at = mix.below(bytes.count)
                switch mix.below(5) {
                case 0: bytes.insert(alphabet[mix.below(alphabet.count)], at: at)
                case 4: bytes.insert(contentsOf: characters[mix.below(characters.count)], at: at)
                case 1: bytes.remove(at: at)
                case 2: bytes[at] = alphabet[mix.below(alphabet.count)]
                default:
                    // Copy a short span elsewhere: moves tags, quotes and comment markers around.
                    let length = min(1 + mix.below(24), bytes.count - at)
                    bytes.insert(contentsOf: bytes[at..<(at + length)], at: mix.below(bytes.count))
                }
            }
            if agree(bytes, "mutant \(round)") != nil { taken += 1 }
        }
        // Most mutants are still plain XML (a changed value, a new element), so the scanner must take many.
        #expect(taken > 2_000)
    }
}

/// How `parseInFileOrder` reads `bytes`: the scanner's entries, or nil when it left them to libxml2 (or refused them).
private func scanned(_ bytes: [UInt8]) -> ScannedEntries? {
    guard
        case .scanned(let scanned) = try? ConfigParser.parseInFileOrder(
            bytes,
            file: testFile,
            accepting: [.xml],
            limits: ConfigParser.defaultLimits
        )
    else { return nil }
    return scanned
}

/// The values of `bytes` read against `template`; records an issue unless the scanner reads the bytes into the
/// template's entries with exactly those values.
@discardableResult
private func readAgainst(
    _ template: ScannedEntries,
    _ bytes: [UInt8],
    _ label: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [String]? {
    guard let xml = template.template else {
        Issue.record("\(label): the template cannot serve as one", sourceLocation: sourceLocation)
        return nil
    }
    let found = try? ConfigParser.values(
        bytes,
        like: xml,
        file: testFile,
        accepting: [.xml],
        limits: ConfigParser.defaultLimits
    )
    guard let read = found else { return nil }
    let values = read.values
    #expect(
        xml.rebuilt(read.changes, from: bytes) == bytes,
        "\(label): the template with the changes is not the file",
        sourceLocation: sourceLocation
    )
    guard let reference = scanned(bytes) else {
        Issue.record("\(label): read against the template, but the scanner gives up", sourceLocation: sourceLocation)
        return values
    }
    #expect(values.count == template.entries.count, "\(label)", sourceLocation: sourceLocation)
    var expected = template.entries
    for index in expected.indices where index < values.count { expected[index].value = values[index] }
    #expect(reference.entries == expected, "\(label): not the scanner's entries", sourceLocation: sourceLocation)
    #expect(reference.hasInitialSection == template.hasInitialSection, "\(label)", sourceLocation: sourceLocation)
    return values
}

/// A fleet phone's own file: one template, per-phone values (`values[k]` is the k-th parameter's text as written).
/// `comment`: the text of the comment the file has inside its root, as servers write one per phone.
private func fleetFile(_ values: [String], lineEnd: String = "\n", comment: String = " made for {MAC} ") -> String {
    let lines = [
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>", "<PANASIPPhoneConfig>", "<!--\(comment)-->", "<Device>",
        "<Lines>", "<Line idx=\"1\">", "<PHONE_NUMBER>\(values[0])</PHONE_NUMBER>",
        "<DISPLAY_NAME perm=\"RW\">\(values[1])</DISPLAY_NAME>",
        "<SIP_PASS perm='!' access=\"A\">\(values[2])</SIP_PASS>",
        "</Line>", "</Lines>", "<EMPTY_ONE></EMPTY_ONE>", "<SELF_CLOSED/>", "<NTP_ADDR>\(values[3])</NTP_ADDR>",
        "</Device>", "</PANASIPPhoneConfig>",
    ]
    return lines.joined(separator: lineEnd) + lineEnd
}

@Suite("Plain XML read against a template")
struct PlainXMLTemplateTests {
    static let first = ["20001", "Ext 2000 L1", "x000104729Q", "ntp.example.net"]

    @Test(
        "a file from the last file's template is read by its texts alone, exactly as the scanner reads it",
        arguments: [
            ["20002", "Ext 2000 L2", "y999", "ntp2.example.net"],
            ["", "", "", ""],
            ["200020002000200020002000", "a &amp; b &lt;c&gt; &quot;d&apos;", "p>q ] ]] x", "\t spaced \t"],
            ["1", "Jürgen Müller ☎ 😀", "日本", "\u{A0}"],
            first,
        ]
    )
    func sameTemplateOtherValues(_ values: [String]) throws {
        for lineEnd in ["\n", "\r\n"] {
            let template = try #require(scanned(Array(fleetFile(Self.first, lineEnd: lineEnd).utf8)))
            let file = fleetFile(values, lineEnd: lineEnd)
            let read = readAgainst(template, Array(file.utf8), file)
            let decoded = values.map {
                $0.replacingOccurrences(of: "&amp;", with: "&").replacingOccurrences(of: "&lt;", with: "<")
                    .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&quot;", with: "\"")
                    .replacingOccurrences(of: "&apos;", with: "'")
            }
            #expect(read == [decoded[0], decoded[1], decoded[2], "", "", decoded[3]], "\(file)")
        }
    }

    @Test("a text that starts with the template's bytes and goes on, or a file cut after them, is read, not shared")
    func textLongerThanTheTemplatesOrCutShort() throws {
        let template = try #require(scanned(Array(fleetFile(Self.first).utf8)))
        let longer = fleetFile(["200012", "Ext 2000 L1 and more", "x000104729Q", "ntp.example.net.x"])
        #expect(
            readAgainst(template, Array(longer.utf8), longer)
                == ["200012", "Ext 2000 L1 and more", "x000104729Q", "", "", "ntp.example.net.x"]
        )
        // Cut right after a text that has the template's bytes, and after its `<`.
        let whole = Array(fleetFile(Self.first).utf8)
        let end = try #require(whole.indices.first { whole[$0...].starts(with: Array("20001</".utf8)) })
        for cut in [end + 5, end + 6] {
            #expect(readAgainst(template, Array(whole[..<cut]), "cut at \(cut)") == nil)
        }
    }

    @Test("the changes are the texts and comments whose bytes differ from the template's, and no others")
    func changesAreTheDifferingTexts() throws {
        func changes(_ file: String, against first: [String] = Self.first) throws -> [String] {
            let xml = try #require(scanned(Array(fleetFile(first).utf8))?.template)
            let bytes = Array(file.utf8)
            let read = try #require(
                try ConfigParser.values(
                    bytes,
                    like: xml,
                    file: testFile,
                    accepting: [.xml],
                    limits: ConfigParser.defaultLimits
                )
            )
            #expect(xml.rebuilt(read.changes, from: bytes) == bytes)
            return read.changes.map { change in
                String(decoding: xml.body[change.template], as: UTF8.self) + " -> "
                    + String(decoding: bytes[change.file], as: UTF8.self)
            }
        }
        #expect(try changes(fleetFile(Self.first)) == [])
        #expect(
            try changes(fleetFile(["20001", "Ext 2000 L2", "x000104729Q", "x"]))
                == ["Ext 2000 L1 -> Ext 2000 L2", "ntp.example.net -> x"]
        )
        // The same value written with an entity is other bytes.
        let quoted = ["1", "say \"hi\"", "p", "n"]
        #expect(
            try changes(fleetFile(["1", "say &quot;hi&quot;", "p", "n"]), against: quoted)
                == ["say \"hi\" -> say &quot;hi&quot;"]
        )
        #expect(
            try changes(fleetFile(["", "Ext 2000 L1", "longer than the template's", "ntp.example.net"], comment: "c"))
                == [" made for {MAC} --> -> c-->", "20001 -> ", "x000104729Q -> longer than the template's"]
        )
    }

    @Test(
        "a file with a line end or a comment in a parameter's text is no template: a later file would read otherwise",
        arguments: [
            "<PANASIPPhoneConfig><A>x\ny</A>\n<B>1</B></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig>\r\n<A>x\r\ny</A>\r\n<B>1</B></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A>x<!--\n--></A>\n<B>1</B></PANASIPPhoneConfig>",
            "<PANASIPPhoneConfig><A>x<!-- c -->y</A><B>1</B></PANASIPPhoneConfig>",
        ]
    )
    func noTemplateWithALineEndOrACommentInAText(_ text: String) throws {
        let read = try #require(scanned(Array(text.utf8)), "plain XML, but the scanner gave up")
        #expect(read.entries.count == 2)
        #expect(read.template == nil)
        // Without such a text, the same layout serves.
        #expect(scanned(Array("<PANASIPPhoneConfig><A>x</A>\n<B>1</B></PANASIPPhoneConfig>".utf8))?.template != nil)
    }

    @Test("a text the same as the template's, entities and all, gives the template's value; the next text is its own")
    func sameTextAsTheTemplate() throws {
        let values = ["1", "a &amp; b &lt;&gt;", "p", "a value long enough to be kept on the heap"]
        let template = try #require(scanned(Array(fleetFile(values).utf8)))
        let file = fleetFile(["2", values[1], "q", values[3]])
        let read = readAgainst(template, Array(file.utf8), file)
        #expect(read == ["2", "a & b <>", "q", "", "", values[3]])
    }

    @Test(
        "a one-line comment may say anything the scanner reads (servers write one per phone): only its text is read",
        arguments: [
            " made for 0080F0000002 ", "", "x-y", " é ☎ 2026-11-27 08:00:00, a longer one than the template's ", "<>&",
        ]
    )
    func perPhoneComment(_ comment: String) throws {
        let second = ["20002", "Ext 2000 L2", "y999", "ntp2.example.net"]
        for lineEnd in ["\n", "\r\n"] {
            let template = try #require(scanned(Array(fleetFile(Self.first, lineEnd: lineEnd).utf8)))
            let file = fleetFile(second, lineEnd: lineEnd, comment: comment)
            let read = readAgainst(template, Array(file.utf8), file)
            #expect(read == [second[0], second[1], second[2], "", "", second[3]], "\(file)")
            // Before and after the root too, and a comment the template has twice in a row.
            let around = { (text: String) in
                fleetFile(second, lineEnd: lineEnd, comment: text).replacingOccurrences(
                    of: "<PANASIPPhoneConfig>",
                    with: "<!--\(text)--><!--\(text)-->" + lineEnd + "<PANASIPPhoneConfig>"
                ) + "<!--\(text)-->" + lineEnd
            }
            let aroundTemplate = try #require(scanned(Array(around(" at 08:00 ").utf8)))
            #expect(
                readAgainst(aroundTemplate, Array(around(comment).utf8), around(comment))
                    == [second[0], second[1], second[2], "", "", second[3]]
            )
        }
    }

    @Test(
        "a line end in a comment moves the parameters after it, empty ones too: read in full",
        arguments: ["\n", "\r\n"]
    )
    func lineEndInACommentAfterTheLastText(_ lineEnd: String) throws {
        // After the last text, only an empty-element parameter is left to move; with no text at all, the same.
        for (layout, values) in [
            ("<PANASIPPhoneConfig>\n<A>1</A>\n<!--%@-->\n<B/>\n</PANASIPPhoneConfig>\n", ["2", ""]),
            ("<PANASIPPhoneConfig><!--%@--><B/></PANASIPPhoneConfig>", [""]),
        ] {
            func file(_ comment: String, _ value: String) -> String {
                layout.replacingOccurrences(of: "%@", with: comment).replacingOccurrences(of: ">1<", with: ">\(value)<")
            }
            let template = try #require(scanned(Array(file(" x ", "1").utf8)))
            #expect(template.template != nil)
            let oneLine = file(" y ", "2")
            #expect(readAgainst(template, Array(oneLine.utf8), oneLine) == values)
            let twoLines = file(" x\(lineEnd)y ", "2")
            #expect(readAgainst(template, Array(twoLines.utf8), twoLines) == nil, "\(twoLines)")
        }
    }

    @Test("a comment over several lines is layout: the same one is read, another one is not")
    func multiLineCommentIsLayout() throws {
        let template = try #require(scanned(Array(fleetFile(Self.first, comment: " made\nfor {MAC} ").utf8)))
        let same = fleetFile(["2", "n", "p", "t"], comment: " made\nfor {MAC} ")
        #expect(readAgainst(template, Array(same.utf8), same) == ["2", "n", "p", "", "", "t"])
        let other = fleetFile(["2", "n", "p", "t"], comment: " made\nfor 0080F0000002 ")
        #expect(readAgainst(template, Array(other.utf8), other) == nil)
    }

    @Test(
        "a file the template cannot stand for is read in full: another layout, or a text the scanner would not read alone",
        arguments: [
            // texts: a line end (the later parameters' lines move), CRLF, a lone CR, a comment or an element inside,
            // `]]>`, a numeric reference, an unknown entity, a C1 control, bytes that are not UTF-8
            fleetFile(["1\n2", "n", "p", "t"]), fleetFile(["1\r\n2", "n", "p", "t"]),
            fleetFile(["1\r2", "n", "p", "t"]),
            fleetFile(["1<!-- c -->2", "n", "p", "t"]), fleetFile(["1<B>2</B>", "n", "p", "t"]),
            fleetFile(["1", "a]]>b", "p", "t"]), fleetFile(["1", "&#65;", "p", "t"]),
            fleetFile(["1", "&nbsp;", "p", "t"]),
            fleetFile(["1", "\u{85}", "p", "t"]),
            // layout: an attribute, a blank, a name, the line index, an empty element, the end
            fleetFile(Self.first).replacingOccurrences(of: "perm=\"RW\"", with: "perm=\"R\""),
            fleetFile(Self.first).replacingOccurrences(of: "<NTP_ADDR>", with: "<NTP_ADDR >"),
            fleetFile(Self.first).replacingOccurrences(of: "NTP_ADDR", with: "NTP_ADDX"),
            // a comment: over two lines (the later lines move), with `--` or ending in `-` (libxml2 refuses
            // both), ending early and going on as layout that is not the template's, or not a comment at all
            fleetFile(Self.first, comment: " two\nlines "), fleetFile(Self.first, comment: " two\r\nlines "),
            fleetFile(Self.first, comment: " a -- b "), fleetFile(Self.first, comment: " a -"),
            fleetFile(Self.first, comment: " a --> <X>1</X> <!-- b "),
            fleetFile(Self.first).replacingOccurrences(of: "<!-- made for {MAC} -->", with: "<X/>"),
            fleetFile(Self.first).replacingOccurrences(of: "idx=\"1\"", with: "idx=\"2\""),
            fleetFile(Self.first).replacingOccurrences(of: "<SELF_CLOSED/>", with: "<SELF_CLOSED>v</SELF_CLOSED>"),
            fleetFile(Self.first).replacingOccurrences(of: "<EMPTY_ONE></EMPTY_ONE>", with: "<EMPTY_ONE/>"),
            fleetFile(Self.first) + " ", String(fleetFile(Self.first).dropLast(2)),
            fleetFile(Self.first, lineEnd: "\r\n"),
        ]
    )
    func otherTemplate(_ file: String) throws {
        let template = try #require(scanned(Array(fleetFile(Self.first).utf8)))
        #expect(readAgainst(template, Array(file.utf8), file) == nil)
    }

    @Test("a text that is not UTF-8 is read in full, though the layout is the template's")
    func notUTF8Text() throws {
        let template = try #require(scanned(Array(fleetFile(Self.first).utf8)))
        // Only the text's byte changes: the same file with a valid one is read by its texts.
        var bytes = Array(fleetFile(["1", "x", "p", "t"]).utf8)
        let at = try #require((0..<(bytes.count - 2)).first { bytes[$0...].starts(with: Array(">x<".utf8)) }) + 1
        #expect(readAgainst(template, bytes, "x in a text") != nil)
        bytes[at] = 0xFF
        #expect(readAgainst(template, bytes, "0xFF in a text") == nil)
    }

    @Test(
        "50,000 mutants of the plain sample files, each read against its seed: whenever it is, as the scanner reads it"
    )
    func mutantsReadAgainstTheirSeed() throws {
        let plain = try sampleFiles().map(\.1).filter { $0.count < 64 * 1024 && scanned($0) != nil }
        // Seeds that can serve as templates (no line end or comment in a parameter's text).
        let seeds = (plain + plain.map(crlf)).compactMap { seed in
            scanned(seed).flatMap { $0.template == nil ? nil : (seed, $0) }
        }
        #expect(seeds.count >= 8)
        // Text bytes most of the time: a mutant must often keep the layout for the fast read to be tried at all.
        let alphabet = Array("azAZ09 .:@-_\t>]&;<\n\r".utf8) + [0x80, 0xC3, 0xFF]
        var mix = SplitMix64(seed: 0x7E3A)
        var read = 0
        for round in 0..<50_000 {
            let (seed, template) = seeds[round % seeds.count]
            var bytes = seed
            for _ in 0...mix.below(2) {
                let at = mix.below(bytes.count)
                switch mix.below(3) {
                case 0: bytes.insert(alphabet[mix.below(alphabet.count)], at: at)
                case 1: bytes.remove(at: at)
                default: bytes[at] = alphabet[mix.below(alphabet.count)]
                }
            }
            if readAgainst(template, bytes, "mutant \(round)") != nil { read += 1 }
        }
        #expect(read > 2_000)
    }
}
