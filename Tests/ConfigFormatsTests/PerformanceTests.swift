// Fleet mode parses device files tens of thousands of times: keep an 8 KB file cheap (brief: well under 100 µs in
// release). The bound here is loose on purpose, for debug builds on a busy machine; it catches a quadratic slip,
// not a few percent.

import ConfigFormats
import Testing

@Suite("Parsing speed")
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

    @Test func eightKilobyteFileParsesQuickly() throws {
        let bytes = Array(Self.eightKilobyteFile.utf8)
        #expect((7_000...9_000).contains(bytes.count))
        #expect(try ConfigParser.parse(bytes, file: testFile).device.count == 121)
        let rounds = 200
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for _ in 0..<rounds { _ = try ConfigParser.parse(bytes, file: testFile) }
        }
        #expect(elapsed / rounds < .milliseconds(2), "one parse of \(bytes.count) bytes took \(elapsed / rounds)")
    }
}
