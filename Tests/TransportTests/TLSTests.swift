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

    @Test("one pooled handle alternating roots and insecure keeps nothing of the last transfer's")
    func oneHandleKeepsNoRootsOfTheLastTransfer() async throws {
        let site = try Site(tls: true)
        // One loop, one transfer at a time: every fetch runs on the same easy handle.
        let transport = try CurlTransport(loops: 1, maxInFlightPerLoop: 1)
        defer { transport.shutdown() }
        let url = site.tlsURL("hello.cfg")
        let trusted: (inout FetchRequest) -> Void = { $0.extraCAFile = site.server.caCertPath }
        for round in 0..<2 {
            // The same settings twice in a row (the handle keeps its options), then others.
            #expect(await transport.fetch(request(url, trusted)).success() != nil, "round \(round)")
            #expect(await transport.fetch(request(url, trusted)).success() != nil, "round \(round)")
            #expect(await transport.fetch(request(url)).failure()?.kind == .tls, "round \(round)")
            #expect(await transport.fetch(request(url) { $0.insecure = true }).success() != nil, "round \(round)")
            #expect(await transport.fetch(request(url)).failure()?.kind == .tls, "round \(round)")
        }
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

    @Test("a CA file rewritten while the transport runs is read again (the combined roots are rebuilt)")
    func rewrittenCAFile() async throws {
        let siteA = try Site(tls: true)
        let siteB = try Site(tls: true)
        let directory = try makeDirectory("vphone-cafile")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/roots.pem"
        try Data(try caPEM(siteA)).write(to: URL(fileURLWithPath: file))
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        func fetch(_ site: Site) async -> Result<FetchResponse, FetchFailure> {
            await transport.fetch(request(site.tlsURL("hello.cfg")) { $0.extraCAFile = file })
        }
        #expect(await fetch(siteA).success()?.body == helloBody)
        #expect(await fetch(siteA).success()?.body == helloBody)  // from libcurl's cached store
        #expect(await fetch(siteB).failure()?.kind == .tls)
        try Data(try caPEM(siteB) + Array("\n".utf8)).write(to: URL(fileURLWithPath: file))
        #expect(await fetch(siteB).success()?.body == helloBody)
        #expect(await fetch(siteA).failure()?.kind == .tls)
    }

    @Test("the system directory's certificates are the files under hashed names")
    func hashedNames() {
        #expect(TrustFiles.isHashedCertificateName("0123abcd.0"))
        #expect(TrustFiles.isHashedCertificateName("0123ABCD.12"))
        #expect(!TrustFiles.isHashedCertificateName("0123abcd.r0"))
        #expect(!TrustFiles.isHashedCertificateName("ca-certificates.crt"))
        #expect(!TrustFiles.isHashedCertificateName("0123abc.0"))
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

    // MARK: - Roots in memory (extraCAPEM)

    @Test("a server signed by a test CA fails without extraCAPEM and succeeds with the CA's PEM in memory")
    func extraRootsInMemory() async throws {
        let site = try Site(tls: true)
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        let url = site.tlsURL("hello.cfg")
        let pem = try caPEM(site)

        let untrusted = try #require(await transport.fetch(request(url)).failure())
        #expect(untrusted.kind == .tls)

        let trusted = try #require(await transport.fetch(request(url) { $0.extraCAPEM = pem }).success())
        #expect(trusted.body == helloBody)
        #expect(trusted.timings.tlsUs > 0)

        // Another test CA's PEM does not help: verification is on, with the wrong root.
        let other = try Site(tls: true)
        let wrongRoot = try #require(
            await transport.fetch(request(url) { $0.extraCAPEM = try? caPEM(other) }).failure()
        )
        #expect(wrongRoot.kind == .tls)
        #expect(wrongRoot.message.contains("extraCAPEM"))

        // An empty blob is no blob.
        let empty = try #require(await transport.fetch(request(url) { $0.extraCAPEM = [] }).failure())
        #expect(empty.kind == .tls)
        #expect(empty.message.contains("add its root CA"))
    }

    @Test("with extraCAPEM the CA directory is still trusted: the blob adds to the system store")
    func extraRootsInMemoryAddToSystemStore() async throws {
        let siteA = try Site(tls: true)
        let siteB = try Site(tls: true)
        let siteC = try Site(tls: true)
        // A stand-in for /etc/ssl/certs holding only B's CA, hashed the way OpenSSL looks roots up.
        let caDirectory = try hashedCADirectory(siteB)
        defer { try? FileManager.default.removeItem(atPath: caDirectory) }
        let transport = try CurlTransport(loops: 1, maxInFlightPerLoop: 8, systemCAPath: caDirectory)
        defer { transport.shutdown() }
        let pemA = try caPEM(siteA)

        // The same request setup: A's root from memory, B's from the "system" directory, C's from nowhere.
        let fromMemory = await transport.fetch(request(siteA.tlsURL("hello.cfg")) { $0.extraCAPEM = pemA })
        #expect(fromMemory.success()?.body == helloBody)
        let fromDirectory = await transport.fetch(request(siteB.tlsURL("hello.cfg")) { $0.extraCAPEM = pemA })
        #expect(fromDirectory.success()?.body == helloBody)
        let fromNowhere = try #require(
            await transport.fetch(request(siteC.tlsURL("hello.cfg")) { $0.extraCAPEM = pemA }).failure()
        )
        #expect(fromNowhere.kind == .tls)
    }

    @Test("extraCAFile and extraCAPEM together: the roots of both are trusted, and the system store too")
    func fileAndMemoryRoots() async throws {
        let siteA = try Site(tls: true)
        let siteB = try Site(tls: true)
        let siteC = try Site(tls: true)
        let siteD = try Site(tls: true)
        let caDirectory = try hashedCADirectory(siteC)
        defer { try? FileManager.default.removeItem(atPath: caDirectory) }
        let transport = try CurlTransport(loops: 1, maxInFlightPerLoop: 8, systemCAPath: caDirectory)
        defer { transport.shutdown() }
        let caFileA = try #require(siteA.server.caCertPath)
        // No trailing newline: the file's roots must still start on a line of their own.
        var pemB = try caPEM(siteB)
        while pemB.last == UInt8(ascii: "\n") { pemB.removeLast() }

        func fetch(_ site: Site) async -> Result<FetchResponse, FetchFailure> {
            await transport.fetch(
                request(site.tlsURL("hello.cfg")) {
                    $0.extraCAFile = caFileA
                    $0.extraCAPEM = pemB
                }
            )
        }
        #expect(await fetch(siteA).success()?.body == helloBody)  // from the file
        #expect(await fetch(siteB).success()?.body == helloBody)  // from memory
        #expect(await fetch(siteC).success()?.body == helloBody)  // from the CA directory
        let failure = try #require(await fetch(siteD).failure())
        #expect(failure.kind == .tls)
        #expect(failure.message.contains("\(caFileA) and extraCAPEM"))
    }

    @Test("extraCAPEM holding no certificate is a tls failure naming it")
    func badPEM() async throws {
        let site = try Site(tls: true)
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(
                request(site.tlsURL("hello.cfg")) { $0.extraCAPEM = Array("not a certificate\n".utf8) }
            ).failure()
        )
        #expect(failure.kind == .tls)
        #expect(failure.message.contains("extraCAPEM"))
        #expect(failure.message.contains("no valid PEM certificate"))
    }

    @Test("an unreadable extraCAFile beside extraCAPEM fails https up front, naming the file; http is unaffected")
    func unreadableFileWithPEM() async throws {
        let site = try Site(tls: true)
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        let pem = try caPEM(site)

        let failure = try #require(
            await transport.fetch(
                request(site.tlsURL("hello.cfg")) {
                    $0.extraCAFile = "/nonexistent/roots.pem"
                    $0.extraCAPEM = pem
                }
            ).failure()
        )
        #expect(failure.kind == .tls)
        #expect(failure.message.contains("/nonexistent/roots.pem"))
        #expect(failure.message.contains("no such file"))

        let plain = await transport.fetch(
            request(site.url("hello.cfg")) {
                $0.extraCAFile = "/nonexistent/roots.pem"
                $0.extraCAPEM = pem
            }
        )
        #expect(plain.success()?.body == helloBody)
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

/// The PEM bytes of the test CA that signed `site`'s certificate.
func caPEM(_ site: Site) throws -> [UInt8] {
    let path = try #require(site.server.caCertPath)
    return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// A new directory holding `site`'s CA under its OpenSSL subject hash: a stand-in for /etc/ssl/certs.
func hashedCADirectory(_ site: Site) throws -> String {
    let directory = try makeDirectory("vphone-capath")
    let ca = try #require(site.server.caCertPath)
    let hash = try openssl(["x509", "-hash", "-noout", "-in", ca])
    try FileManager.default.copyItem(atPath: ca, toPath: directory + "/\(hash).0")
    return directory
}
