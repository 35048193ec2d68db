// Fleet mode parses device files tens of thousands of times. Their speed is measured by the benchmarks
// (scripts/bench-fleet), never asserted here: a timed assertion fails on a busy machine and proves nothing.

import ConfigFormats
import Testing

@Suite("Parsing an 8 KB file")
struct PerformanceTests {
    /// A device file of about 8 KB: provisioning, network and SIP settings plus four lines.
    static let eightKilobyteFile: String = {
        var xml = "<PANASIPPhoneConfig>\n<Device>\n<System>\n<Prov>\n"
        for index in 0..<95 {
            xml += "<CFG_PARAMETER_\(index) perm=\"R\">value number \(index)</CFG_PARAMETER_\(index)>\n"
        }
        xml += "</Prov>\n</System>\n<Network>\n<HTTP>\n"
        xml += "<HTTP_USER_AGENT>Panasonic_{MODEL}/{fwver} ({mac})</HTTP_USER_AGENT>\n"
        xml += "<HTTP_AUTH_PASSWORD perm=\"!\" access=\"A\">s3cr&amp;t</HTTP_AUTH_PASSWORD>\n"
        xml += "</HTTP>\n</Network>\n<Lines>\n"
        for line in 1...4 {
            xml += "<Line idx=\"\(line)\">\n<Sip>\n"
            for name in ["PHONE_NUMBER", "SIP_URI", "LINE_ENABLE", "SIP_AUTHID", "SIP_PASS", "SIP_RGSTR_ADDR"] {
                xml += "<\(name) perm=\"!\">\(name.lowercased())-\(line)@pbx.example.com</\(name)>\n"
            }
            xml += "</Sip>\n</Line>\n"
        }
        xml += "</Lines>\n</Device>\n</PANASIPPhoneConfig>\n"
        return xml
    }()

    @Test func eightKilobyteFileParsesTheSameEveryTime() throws {
        let bytes = Array(Self.eightKilobyteFile.utf8)
        #expect((7_000...9_000).contains(bytes.count))
        let first = try ConfigParser.parse(bytes, file: testFile)
        #expect(first.device.count == 121)
        for _ in 0..<50 { #expect(try ConfigParser.parse(bytes, file: testFile).device == first.device) }
    }
}
