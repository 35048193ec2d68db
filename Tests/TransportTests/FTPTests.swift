// FTP against a real vsftpd: the provisioning credentials are the FTP login (spec §3).

import Foundation
import Testing
import VPhoneTesting

@testable import Transport

@Suite("CurlTransport over FTP (vsftpd)")
struct CurlTransportFTPTests {
    static let user = "phone"
    static let password = "ftp-s3cret"

    /// A vsftpd with one user, serving `hello.cfg`, `prov/KX-UTG300.cfg` and `big.bin`.
    final class Server: @unchecked Sendable {
        let root: String
        let ftp: FTPServer

        init(anonymous: Bool = false) throws {
            root = try makeServedDirectory(
                "vphone-ftp",
                files: ["hello.cfg": helloBody, "prov/KX-UTG300.cfg": pattern(3000), "big.bin": pattern(100_000)]
            )
            ftp = try anonymous ? FTPServer(root: root) : FTPServer(root: root, user: user, password: password)
        }

        deinit {
            ftp.stop()
            try? FileManager.default.removeItem(atPath: root)
        }

        func url(_ path: String) -> String { ftp.baseURL + "/" + path }
    }

    @Test("a file arrives whole with the login from the request, in a subdirectory too")
    func fetches() async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        for (path, body) in [("hello.cfg", helloBody), ("prov/KX-UTG300.cfg", pattern(3000))] {
            let response = try #require(
                await transport.fetch(
                    request(server.url(path)) {
                        $0.username = Self.user
                        $0.password = Self.password
                    }
                ).success()
            )
            // 221 (goodbye): libcurl closes the connection after the transfer, and that is its last reply.
            #expect(response.status == 221)
            #expect(response.body == body)
        }
        let log = server.ftp.log()
        #expect(log.contains { $0.contains("OK LOGIN") && $0.contains("[\(Self.user)]") })
        #expect(log.contains { $0.contains("\"RETR KX-UTG300.cfg\"") })
    }

    @Test("the login may sit in the URL (user:password@)")
    func credentialsInURL() async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let url = server.url("hello.cfg").replacingOccurrences(
            of: "ftp://",
            with: "ftp://\(Self.user):\(Self.password)@"
        )
        #expect(await transport.fetch(request(url)).success()?.body == helloBody)
    }

    @Test("a missing file is notFound")
    func notFound() async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(
                request(server.url("missing.cfg")) {
                    $0.username = Self.user
                    $0.password = Self.password
                }
            ).failure()
        )
        #expect(failure.kind == .notFound)
        #expect(failure.message.contains("127.0.0.1:\(server.ftp.port)"))
        #expect(!failure.message.contains(Self.password))
    }

    @Test("a wrong password is auth, in the request or in the URL, and the password is never shown")
    func wrongPassword() async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let fields = try #require(
            await transport.fetch(
                request(server.url("hello.cfg")) {
                    $0.username = Self.user
                    $0.password = "not-the-password"
                }
            ).failure()
        )
        #expect(fields.kind == .auth)
        #expect(fields.message.contains("127.0.0.1:\(server.ftp.port)"))
        #expect(!fields.message.contains("not-the-password"))

        let url = server.url("hello.cfg").replacingOccurrences(of: "ftp://", with: "ftp://\(Self.user):wrong-pw@")
        let inURL = try #require(await transport.fetch(request(url)).failure())
        #expect(inURL.kind == .auth)
        #expect(!inURL.message.contains("wrong-pw"))
        #expect(server.ftp.log().contains { $0.contains("FAIL LOGIN") })
    }

    @Test("no credentials to a server with users only: libcurl's anonymous login is refused, auth")
    func anonymousRefused() async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(server.url("hello.cfg"))).failure())
        #expect(failure.kind == .auth)
    }

    @Test("an anonymous server serves without credentials and refuses other users")
    func anonymousServer() async throws {
        let server = try await offPool { try Server(anonymous: true) }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = try #require(await transport.fetch(request(server.url("hello.cfg"))).success())
        #expect(response.body == helloBody)

        let failure = try #require(
            await transport.fetch(
                request(server.url("hello.cfg")) {
                    $0.username = Self.user
                    $0.password = Self.password
                }
            ).failure()
        )
        #expect(failure.kind == .auth)
    }

    @Test("the size cap applies to FTP: the size vsftpd announces is refused before the transfer")
    func tooLarge() async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(
                request(server.url("big.bin")) {
                    $0.username = Self.user
                    $0.password = Self.password
                    $0.maxBytes = 10_000
                }
            ).failure()
        )
        #expect(failure.kind == .tooLarge)
        #expect(!server.ftp.log().contains { $0.contains("\"RETR big.bin\"") })
    }
}
