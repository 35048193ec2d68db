// CurlTransport against a real nginx on 127.0.0.1: successes, and each failure kind.

import Foundation
import Testing
import VPhoneTesting

@testable import Transport

@Suite("CurlTransport over HTTP")
struct CurlTransportHTTPTests {
    @Test("200: body, content type and the exact User-Agent in nginx's access log")
    func fetchesFile() async throws {
        let site = try Site()
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = try #require(await transport.fetch(request(site.url("hello.cfg"))).success())
        #expect(response.status == 200)
        #expect(response.body == helloBody)
        #expect(response.contentType == "text/plain")
        #expect(response.effectiveURL == site.url("hello.cfg"))

        let log = try site.log(atLeast: 1)
        #expect(log.count == 1)
        #expect(log.first?.contains("\"GET /hello.cfg HTTP/1.1\" 200 45 \"\(phoneAgent)\"") == true)
    }

    @Test("404 is an httpStatus failure naming the host and the fix")
    func notFound() async throws {
        let site = try Site()
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(site.url("missing.cfg"))).failure())
        #expect(failure.kind == .httpStatus)
        #expect(failure.httpStatus == 404)
        #expect(failure.message.contains("127.0.0.1:\(site.server.port)"))
        #expect(failure.message.contains("HTTP 404"))
        #expect(failure.timings.totalUs > 0)
        #expect(failure.description.hasPrefix("http_status: "))
    }

    @Test("other HTTP errors, and a 3xx that cannot be followed, are httpStatus failures", arguments: [500, 403, 300])
    func httpErrors(status: Int) async throws {
        let site = try Site { _ in "location = /status { return \(status); }" }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(site.url("status"))).failure())
        #expect(failure.kind == .httpStatus)
        #expect(failure.httpStatus == status)
    }

    @Test("a closed port is a connect failure")
    func connectionRefused() async throws {
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        let port = NginxServer.freePort()

        let failure = try #require(await transport.fetch(request("http://127.0.0.1:\(port)/a.cfg")).failure())
        #expect(failure.kind == .connect)
        #expect(failure.message.contains("127.0.0.1:\(port)"))
    }

    @Test("an unresolvable host is a dns failure")
    func unresolvable() async throws {
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request("http://no-such-host.invalid/a.cfg")).failure())
        #expect(failure.kind == .dns)
        #expect(failure.message.contains("no-such-host.invalid"))
    }

    @Test("a size cap below the announced length fails as tooLarge before the body is read")
    func tooLargeAnnounced() async throws {
        let huge = 32 * 1024 * 1024
        let site = try Site(files: ["huge.bin": pattern(huge)])
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(request(site.url("huge.bin")) { $0.maxBytes = 10_000 }).failure()
        )
        #expect(failure.kind == .tooLarge)
        #expect(failure.message.contains("10000-byte limit"))
        // The connection was dropped after the headers: nginx could not push 32 MB into the socket buffers.
        let sent = try #require(try site.log(atLeast: 1).first.flatMap(bodyBytesSent))
        #expect(sent < huge)
    }

    @Test("a size cap is enforced while reading when the length is not announced (chunked)")
    func tooLargeChunked() async throws {
        // SSI makes nginx stream the HTML without a Content-Length.
        let site = try Site(files: ["page.html": Array(repeating: UInt8(ascii: "x"), count: 300_000)]) { _ in
            "location ~ \\.html$ { ssi on; }"
        }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(site.url("page.html"))).failure())
        #expect(failure.kind == .tooLarge)
        #expect(failure.message.contains("sent more than the 245760-byte limit"))

        // The same stream under the cap arrives whole.
        var larger = request(site.url("page.html"))
        larger.maxBytes = 300_000
        let response = try #require(await transport.fetch(larger).success())
        #expect(response.body.count == 300_000)
    }

    @Test(
        "schemes other than http, https, tftp and ftp are refused without reaching libcurl",
        arguments: [
            "file:///etc/passwd", "gopher://127.0.0.1/1", "scp://host/file", "dict://host/x",
            "FILE:///etc/passwd", "ldap://host/", "no-scheme.example.com/a.cfg", "",
        ]
    )
    func refusedSchemes(url: String) async throws {
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(url)).failure())
        #expect(failure.kind == .protocolRefused)
        #expect(failure.timings == .zero)
    }

    @Test(
        "redirects are followed to http, but not to file:// or ftp://",
        arguments: [
            ("tofile", "file:///etc/passwd"), ("toftp", "ftp://127.0.0.1/x.cfg"),
            ("togopher", "gopher://127.0.0.1/1"),
        ]
    )
    func refusedRedirect(location: String, target: String) async throws {
        let site = try Site { _ in
            """
            location = /moved { return 302 /hello.cfg; }
            location = /\(location) { return 302 \(target); }
            """
        }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let moved = try #require(await transport.fetch(request(site.url("moved"))).success())
        #expect(moved.body == helloBody)
        #expect(moved.effectiveURL == site.url("hello.cfg"))

        let failure = try #require(await transport.fetch(request(site.url(location))).failure())
        #expect(failure.kind == .protocolRefused)
        #expect(failure.message.contains("redirect"))
    }

    @Test("a redirect loop fails as redirect after 5 hops")
    func redirectLoop() async throws {
        let site = try Site { _ in "location = /loop { return 302 /loop; }" }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(site.url("loop"))).failure())
        #expect(failure.kind == .redirect)
        #expect(try site.log(atLeast: 6).count == 6)  // the request and 5 redirects
    }

    @Test("a server too slow for the total timeout is a timeout")
    func timeout() async throws {
        let site = try Site { _ in "location /slow { limit_rate 1k; }" }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(request(site.url("slow.bin")) { $0.totalTimeoutMs = 300 }).failure()
        )
        #expect(failure.kind == .timeout)
        #expect(failure.message.contains("300 ms"))
        // libcurl's own clock: the timeout fired on time. (The wall clock is no measure: it also counts how long
        // this test waited for a thread to resume on, which on a loaded machine running the suite can be a minute.)
        #expect(failure.timings.totalUs < 5_000_000)
    }

    @Test("Basic credentials: none is a 401 httpStatus, wrong ones are auth (no password in the message)")
    func basicAuth() async throws {
        let directory = try makeDirectory("vphone-htpasswd")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hash = try openssl(["passwd", "-apr1", "s3cret-pw"])
        try "phone:\(hash)\n".write(toFile: directory + "/htpasswd", atomically: true, encoding: .utf8)
        let site = try Site { _ in
            "location /private { auth_basic \"prov\"; auth_basic_user_file \(directory)/htpasswd; }"
        }
        try FileManager.default.createDirectory(atPath: site.root + "/private", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: site.root + "/private/a.cfg", contents: Data(helloBody)))
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let anonymous = try #require(await transport.fetch(request(site.url("private/a.cfg"))).failure())
        #expect(anonymous.kind == .httpStatus)
        #expect(anonymous.httpStatus == 401)

        let wrongURL = site.url("private/a.cfg").replacingOccurrences(of: "http://", with: "http://phone:wrong-pw@")
        let wrong = try #require(await transport.fetch(request(wrongURL)).failure())
        #expect(wrong.kind == .auth)
        #expect(wrong.httpStatus == 401)
        #expect(!wrong.message.contains("wrong-pw"))

        let wrongFields = try #require(
            await transport.fetch(
                request(site.url("private/a.cfg")) {
                    $0.username = "phone"
                    $0.password = "not-the-pw"
                }
            ).failure()
        )
        #expect(wrongFields.kind == .auth)
        #expect(!wrongFields.message.contains("not-the-pw"))

        let good = try #require(
            await transport.fetch(
                request(site.url("private/a.cfg")) {
                    $0.username = "phone"
                    $0.password = "s3cret-pw"
                }
            ).success()
        )
        #expect(good.body == helloBody)

        let inURL = site.url("private/a.cfg").replacingOccurrences(of: "http://", with: "http://phone:s3cret-pw@")
        #expect(await transport.fetch(request(inURL)).success()?.body == helloBody)
    }

    @Test("timings are non-zero and in phase order")
    func timings() async throws {
        let site = try Site()
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let timings = try #require(await transport.fetch(request(site.url("big.bin"))).success()).timings
        #expect(timings.connectUs > 0)
        #expect(timings.dnsUs <= timings.connectUs)
        #expect(timings.tlsUs == 0)
        #expect(timings.connectUs <= timings.firstByteUs)
        #expect(timings.firstByteUs <= timings.totalUs)
        #expect(timings.totalUs > 0)
    }

    @Test("sourceInterface picks the local address the server sees")
    func sourceInterface() async throws {
        let site = try Site()
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = await transport.fetch(request(site.url("hello.cfg")) { $0.sourceInterface = "host!127.0.0.2" })
        #expect(response.success()?.body == helloBody)
        #expect(try site.log(atLeast: 1).first?.hasPrefix("127.0.0.2 ") == true)
    }

    @Test("an HTTP proxy is used when set (the URL's host need not resolve)")
    func proxy() async throws {
        let origin = try Site()
        let proxySite = try Site { _ in
            "location / { proxy_pass http://127.0.0.1:\(origin.server.port); }"
        }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = await transport.fetch(
            request("http://provisioning.invalid/hello.cfg") {
                $0.proxy = "127.0.0.1:\(proxySite.server.port)"
            }
        )
        #expect(response.success()?.body == helloBody)
        #expect(try proxySite.log(atLeast: 1).first?.contains("GET http://provisioning.invalid/hello.cfg") == true)
        #expect(try origin.log(atLeast: 1).first?.contains("\"\(phoneAgent)\"") == true)
    }

    @Test("connections: fresh per fetch by default, reused within a group only")
    func connectionReuse() async throws {
        let site = try Site()
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        func fetch(reuse: Bool, group: UInt64?) async {
            let response = await transport.fetch(
                request(site.url("hello.cfg")) {
                    $0.reuseConnection = reuse
                    $0.connectionGroup = group
                }
            )
            #expect(response.success() != nil)
        }
        await fetch(reuse: false, group: nil)  // 0
        await fetch(reuse: false, group: nil)  // 1
        await fetch(reuse: true, group: 7)  // 2
        await fetch(reuse: true, group: 7)  // 3
        await fetch(reuse: true, group: 8)  // 4
        await fetch(reuse: true, group: 7)  // 5
        await fetch(reuse: true, group: 8)  // 6
        await fetch(reuse: false, group: 7)  // 7

        let serials = try site.log(atLeast: 8).map { connectionSerial($0) ?? -1 }
        try #require(serials.count == 8)
        #expect(serials[0] != serials[1])
        #expect(serials[2] == serials[3] && serials[3] == serials[5])
        #expect(serials[4] == serials[6])
        #expect(serials[4] != serials[2])
        #expect(Set([serials[0], serials[1], serials[2], serials[4], serials[7]]).count == 5)
    }
}

/// Runs the real openssl command and returns its trimmed standard output.
func openssl(_ arguments: [String], in directory: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0, "openssl \(arguments) failed")
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
