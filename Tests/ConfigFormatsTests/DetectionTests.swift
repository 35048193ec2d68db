// spec §2: telling XML from Standard Format by the first bytes.

import ConfigFormats
import Testing

@Suite("Format detection")
struct DetectionTests {
    static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    static let detected: [([UInt8], ConfigFormat)] = [
        (Array("<PANASIPPhoneConfig/>".utf8), .xml),
        (Array(" \t\r\n<PANASIPPhoneConfig/>".utf8), .xml),
        (Array("<?xml version=\"1.0\"?><x/>".utf8), .xml),
        (bom + Array("<x/>".utf8), .xml),
        (Array("# Panasonic SIP Phone Standard Format File #\r\n".utf8), .text),
        (Array("# Panasonic SIP Phone Standard Format File # more".utf8), .text),
        (bom + Array("# Panasonic SIP Phone Standard Format File #".utf8), .text),
    ]

    @Test(arguments: detected)
    func detects(bytes: [UInt8], format: ConfigFormat) {
        #expect(ConfigParser.detect(bytes) == format)
    }

    static let undetected: [[UInt8]] = [
        [],
        Array("   \r\n".utf8),
        Array("# Panasonic SIP Phone Standard Format File".utf8),
        Array(" # Panasonic SIP Phone Standard Format File #".utf8),
        Array("U2FsdGVkX18BAgMEBQYHCBsc".utf8),
        Array("SIP_AUTHID_1=\"1\"".utf8),
        [0xFF, 0xFE, 0x3C, 0x00],
        bom,
    ]

    @Test(arguments: undetected)
    func detectsNothing(bytes: [UInt8]) {
        #expect(ConfigParser.detect(bytes) == nil)
    }

    @Test func defaultLimitsAre240KAnd120K() {
        #expect(ConfigParser.defaultLimits == [.xml: 245_760, .text: 122_880])
    }

    @Test func errorDescriptionHasFileLineAndReason() {
        #expect(ConfigFormatError(file: "a.cfg", line: 3, reason: "bad").description == "a.cfg:3: bad")
        #expect(ConfigFormatError(file: "a.cfg", reason: "bad").description == "a.cfg: bad")
        #expect(ConfigFormatError(file: "a.cfg", reason: "bad").kind == .other)
        #expect(ConfigWarning(line: 4, message: "skipped").description == "line 4: skipped")
    }

    @Test func entriesAreSortedByLine() {
        let document = ConfigDocument(
            format: .xml,
            initial: ["I": ConfigEntry(name: "I", value: "", line: 5, section: .initial)],
            device: [
                "B": ConfigEntry(name: "B", value: "", line: 9), "A": ConfigEntry(name: "A", value: "", line: 2),
            ]
        )
        #expect(document.entries.map(\.name) == ["A", "I", "B"])
    }
}
