// TFTP against a real tftpd-hpa, the phone's first-choice scheme for URLs without one (spec §3):
// status 0 is success.

import Foundation
import Testing
import VPhoneTesting

@testable import Transport

@Suite("CurlTransport over TFTP (tftpd-hpa)")
struct CurlTransportTFTPTests {
    @Test(
        "a file arrives whole with status 0, including one that ends on a block boundary",
        arguments: [45, 1300, 1024]
    )
    func fetches(size: Int) async throws {
        let root = try makeServedDirectory("vphone-tftp", files: ["KX-UTG300.cfg": pattern(size)])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try await offPool { try TFTPServer(root: root) }
        defer { server.stop() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = try #require(await transport.fetch(request(server.baseURL + "/KX-UTG300.cfg")).success())
        #expect(response.status == 0)
        #expect(response.body == pattern(size))
        #expect(response.timings.totalUs > 0)
    }

    @Test("paths are relative to the served directory, subdirectories included")
    func subdirectory() async throws {
        let root = try makeServedDirectory("vphone-tftp", files: ["prov/0080f0c571eb.cfg": helloBody])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try await offPool { try TFTPServer(root: root) }
        defer { server.stop() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = await transport.fetch(request(server.baseURL + "/prov/0080f0c571eb.cfg"))
        #expect(response.success()?.body == helloBody)
    }

    @Test("a missing file is notFound, with a message naming the server and no libcurl noise")
    func notFound() async throws {
        let root = try makeServedDirectory("vphone-tftp", files: [:])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try await offPool { try TFTPServer(root: root) }
        defer { server.stop() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(server.baseURL + "/missing.cfg")).failure())
        #expect(failure.kind == .notFound)
        #expect(failure.message.contains("127.0.0.1:\(server.port)"))
        #expect(failure.message.contains("TFTP: File Not Found"))
        // libcurl 7.88 leaves an unrelated getpeername() complaint in its error buffer for UDP.
        #expect(!failure.message.contains("getpeername"))
    }

    @Test("the size cap applies to TFTP too")
    func tooLarge() async throws {
        let root = try makeServedDirectory("vphone-tftp", files: ["big.cfg": pattern(4000)])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try await offPool { try TFTPServer(root: root) }
        defer { server.stop() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(request(server.baseURL + "/big.cfg") { $0.maxBytes = 1000 }).failure()
        )
        #expect(failure.kind == .tooLarge)
        #expect(failure.message.contains("1000-byte limit"))
    }

    @Test("a stopped server is a timeout, not a hang")
    func stopped() async throws {
        let root = try makeServedDirectory("vphone-tftp", files: ["a.cfg": helloBody])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let server = try await offPool { try TFTPServer(root: root) }
        server.stop()
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(request(server.baseURL + "/a.cfg") { $0.totalTimeoutMs = 500 }).failure()
        )
        #expect(failure.kind == .timeout)
    }
}
