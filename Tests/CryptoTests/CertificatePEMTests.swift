import Crypto
import Foundation
import Testing
import VPhoneTesting

@Suite struct CertificatePEMTests {
    /// A real certificate made by openssl.
    static let pem = Fixture.rootCertificatePEM

    @Test func realCertificatesAreCountedWithTextAroundThem() throws {
        #expect(try CertificatePEM.count(Array(Self.pem.utf8)) == 1)
        #expect(try CertificatePEM.count(Array(("# roots\n" + Self.pem + Self.pem + "trailer\n").utf8)) == 2)
    }

    @Test func aCertificateCutShortIsRefusedNotSaved() {
        let whole = Array(Self.pem.utf8)
        for cut in [whole.count / 2, whole.count - 30, 40] {
            #expect(throws: CertificatePEM.Problem.self) { try CertificatePEM.count(Array(whole.prefix(cut))) }
        }
        // A good first certificate does not excuse a damaged second one.
        let damaged = Self.pem + Self.pem.replacingOccurrences(of: "MIIBlzCC", with: "MIIBlz!!")
        #expect(throws: CertificatePEM.Problem.self) { try CertificatePEM.count(Array(damaged.utf8)) }
    }

    @Test func somethingElseIsNamed() {
        do {
            _ = try CertificatePEM.count(Array("<html>not found</html>".utf8))
            Issue.record("accepted HTML")
        } catch {
            #expect(error.description.contains("not a PEM certificate"))
        }
        do {
            _ = try CertificatePEM.count(Array("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8))
            Issue.record("accepted a certificate of three bytes")
        } catch {
            #expect(error.description.contains("damaged or cut short"))
        }
    }
}
