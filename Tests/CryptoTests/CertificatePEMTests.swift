import Crypto
import Foundation
import Testing

@Suite struct CertificatePEMTests {
    /// A real certificate made by openssl (the same as `Fixture.rootCertificatePEM`).
    static let pem = """
        -----BEGIN CERTIFICATE-----
        MIIBlzCCAT2gAwIBAgIUNgZZgN3E71hgNcj2NyP4/D8aDFkwCgYIKoZIzj0EAwIw
        IDEeMBwGA1UEAwwVdnBob25lIHVuaXQtdGVzdCByb290MCAXDTI2MTEyNzA4MTgx
        MFoYDzIxMjYxMTAzMDgxODEwWjAgMR4wHAYDVQQDDBV2cGhvbmUgdW5pdC10ZXN0
        IHJvb3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQbfc2UAEUE/Q+J/Hm+JDSK
        kI6VOE3XkmOMyr3uh472a8hiOQ6oW6lbS1fn8y1MBnP5Z2eTuTwC8oB1IeULYBkH
        o1MwUTAdBgNVHQ4EFgQUcgXVB20Z6rVBHZ/YALiNPef4VHIwHwYDVR0jBBgwFoAU
        cgXVB20Z6rVBHZ/YALiNPef4VHIwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
        AgNIADBFAiEAp/x7U/Cfzhm4QEU085MtFWSoFzXzDJ3vL/XuLjep/mACIAb73RVS
        QqLOtoo3Szj5FbSWKNkHrw/u454jV3P1l6t0
        -----END CERTIFICATE-----

        """

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
