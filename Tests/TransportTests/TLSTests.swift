// HTTPS: verification on by default, extra roots trusted in addition to the system store.

import Foundation
import Testing
import VPhoneTesting

@testable import Transport

@Suite("CurlTransport over HTTPS")
struct CurlTransportTLSTests {
    @Test("a server signed by a test CA fails without extraCAFile, succeeds with it, and with insecure")
    func extraRoots() async throws {
        let site = try Site(tls: true)
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        let url = site.tlsURL("hello.cfg")

        let untrusted = try #require(await transport.fetch(request(url)).failure())
        #expect(untrusted.kind == .tls)
        #expect(untrusted.message.contains("unable to get local issuer certificate"))
        #expect(untrusted.message.contains("127.0.0.1:\(try #require(site.server.tlsPort))"))
        #expect(untrusted.message.contains("add its root CA"))

        let trusted = try #require(
            await transport.fetch(request(url) { $0.extraCAFile = site.server.caCertPath }).success()
        )
        #expect(trusted.body == helloBody)
        #expect(trusted.timings.tlsUs >= trusted.timings.connectUs)
        #expect(trusted.timings.firstByteUs >= trusted.timings.tlsUs)
        #expect(trusted.timings.tlsUs > 0)

        // The certificate names localhost too.
        let byName = url.replacingOccurrences(of: "127.0.0.1", with: "localhost")
        #expect(await transport.fetch(request(byName) { $0.extraCAFile = site.server.caCertPath }).success() != nil)

        let insecure = try #require(await transport.fetch(request(url) { $0.insecure = true }).success())
        #expect(insecure.body == helloBody)
    }

    @Test("with extraCAFile the CA directory is still trusted: both sources are consulted")
    func extraRootsAddToSystemStore() async throws {
        let siteA = try Site(tls: true)
        let siteB = try Site(tls: true)
        // A stand-in for /etc/ssl/certs holding only B's CA, hashed the way OpenSSL looks roots up.
        let caDirectory = try makeDirectory("vphone-capath")
        defer { try? FileManager.default.removeItem(atPath: caDirectory) }
        let caB = try #require(siteB.server.caCertPath)
        let hash = try openssl(["x509", "-hash", "-noout", "-in", caB])
        try FileManager.default.copyItem(atPath: caB, toPath: caDirectory + "/\(hash).0")

        let transport = try CurlTransport(loops: 1, maxInFlightPerLoop: 8, systemCAPath: caDirectory)
        defer { transport.shutdown() }

        // A's root from the extra file, B's from the "system" directory, in the same request setup.
        let fromFile = await transport.fetch(
            request(siteA.tlsURL("hello.cfg")) { $0.extraCAFile = siteA.server.caCertPath }
        )
        #expect(fromFile.success()?.body == helloBody)
        let fromDirectory = await transport.fetch(
            request(siteB.tlsURL("hello.cfg")) { $0.extraCAFile = siteA.server.caCertPath }
        )
        #expect(fromDirectory.success()?.body == helloBody)
    }

    @Test("the real system store still verifies alongside an extra file (CAPATH is the system directory)")
    func systemDirectoryIsDefault() throws {
        #expect(Curl.defaultCAPath == "/etc/ssl/certs")
        #expect(FileManager.default.fileExists(atPath: Curl.defaultCAPath))
    }

    @Test("an unreadable extra CA file is a tls failure naming the file")
    func badCAFile() async throws {
        let site = try Site(tls: true)
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(
                request(site.tlsURL("hello.cfg")) {
                    $0.extraCAFile = "/nonexistent/roots.pem"
                }
            ).failure()
        )
        #expect(failure.kind == .tls)
        #expect(failure.message.contains("/nonexistent/roots.pem"))
    }

    @Test("plain HTTP to the TLS port, or TLS to the plain port, fails clearly")
    func wrongPort() async throws {
        let site = try Site(tls: true)
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let tlsToPlain = site.url("hello.cfg").replacingOccurrences(of: "http://", with: "https://")
        let failure = try #require(await transport.fetch(request(tlsToPlain) { $0.insecure = true }).failure())
        #expect(failure.kind == .tls)
    }
}
