// TFTP, the phone's first-choice scheme for URLs without one (spec §3): status 0 is success.

import Testing

@testable import Transport

@Suite("CurlTransport over TFTP")
struct CurlTransportTFTPTests {
    @Test(
        "a file arrives whole with status 0, including one that ends on a block boundary",
        arguments: [45, 1300, 1024]
    )
    func fetches(size: Int) async throws {
        let server = try TFTPServer(files: ["KX-UTG300.cfg": pattern(size)])
        defer { server.stop() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = try #require(await transport.fetch(request(server.url + "/KX-UTG300.cfg")).success())
        #expect(response.status == 0)
        #expect(response.body == pattern(size))
    }

    @Test("a missing file is notFound")
    func notFound() async throws {
        let server = try TFTPServer(files: [:])
        defer { server.stop() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(server.url + "/missing.cfg")).failure())
        #expect(failure.kind == .notFound)
        #expect(failure.message.contains("127.0.0.1:\(server.port)"))
    }

    @Test("the size cap applies to TFTP too")
    func tooLarge() async throws {
        let server = try TFTPServer(files: ["big.cfg": pattern(4000)])
        defer { server.stop() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(request(server.url + "/big.cfg") { $0.maxBytes = 1000 }).failure()
        )
        #expect(failure.kind == .tooLarge)
    }
}
