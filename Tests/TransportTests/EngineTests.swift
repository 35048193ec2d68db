// The engine: many transfers on one loop, the in-flight cap, threads, shutdown, throughput.

import Foundation
import Testing
import VPhoneTesting

@testable import Transport

@Suite("CurlTransport engine")
struct CurlTransportEngineTests {
    @Test("500 concurrent fetches on one loop with at most 64 in flight all complete correctly")
    func manyConcurrent() async throws {
        let site = try Site()
        let transport = try CurlTransport(loops: 1, maxInFlightPerLoop: 64)
        defer { transport.shutdown() }
        let expected = (0..<10).map { try? Data(contentsOf: URL(fileURLWithPath: site.root + "/f\($0).cfg")) }

        let results = await withTaskGroup(of: (Int, Result<FetchResponse, FetchFailure>).self) { group in
            for index in 0..<500 {
                group.addTask { (index, await transport.fetch(request(site.url("f\(index % 10).cfg")))) }
            }
            var results: [Int: Result<FetchResponse, FetchFailure>] = [:]
            for await (index, result) in group { results[index] = result }
            return results
        }
        #expect(results.count == 500)
        for (index, result) in results {
            let body = result.success().map { Data($0.body) }
            #expect(body == expected[index % 10], "fetch \(index)")
        }
        let peak = try #require(transport.maxObservedInFlight.first)
        #expect(peak <= 64)
        #expect(peak > 1)
        #expect(try site.log(atLeast: 500).count == 500)
    }

    @Test("requests are spread over the loops; completions run on a loop thread")
    func loopsAndThreads() async throws {
        let site = try Site()
        let transport = try CurlTransport(loops: 3, maxInFlightPerLoop: 4)
        defer { transport.shutdown() }

        let names = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<30 {
                group.addTask {
                    await withCheckedContinuation { continuation in
                        transport.fetch(request(site.url("hello.cfg"))) { result in
                            continuation.resume(returning: (try? result.get()) != nil ? currentThreadName() : nil)
                        }
                    }
                }
            }
            var names: [String?] = []
            for await name in group { names.append(name) }
            return names
        }
        #expect(Set(names) == ["vphone-curl-0", "vphone-curl-1", "vphone-curl-2"])
        #expect(transport.maxObservedInFlight.allSatisfy { $0 <= 4 })
    }

    @Test("refused URLs also complete asynchronously, on the loop thread")
    func refusedIsAsynchronous() async throws {
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        let name = await withCheckedContinuation { continuation in
            transport.fetch(request("file:///etc/passwd")) { _ in continuation.resume(returning: currentThreadName()) }
        }
        #expect(name == "vphone-curl-0")
    }

    @Test("shutdown fails transfers in flight and every later fetch as 'transport shut down'")
    func shutdown() async throws {
        let site = try Site { _ in "location /slow { limit_rate 1k; }" }
        let transport = try CurlTransport(loops: 2, maxInFlightPerLoop: 1)

        async let slow = [
            transport.fetch(request(site.url("slow.bin"))), transport.fetch(request(site.url("slow.bin"))),
            transport.fetch(request(site.url("slow.bin"))), transport.fetch(request(site.url("slow.bin"))),
        ]
        _ = try site.log(atLeast: 0)
        try await Task.sleep(for: .milliseconds(300))
        transport.shutdown()
        for result in await slow {
            let failure = result.failure()
            #expect(failure?.kind == .other)
            #expect(failure?.message.hasPrefix("transport shut down") == true)
        }
        let late = await transport.fetch(request(site.url("hello.cfg"))).failure()
        #expect(late?.kind == .other)
        #expect(late?.message.hasPrefix("transport shut down") == true)
        transport.shutdown()  // twice is fine
    }

    @Test("shutdown from inside a completion does not deadlock")
    func shutdownFromCompletion() async throws {
        let site = try Site()
        let transport = try CurlTransport()
        let result = await withCheckedContinuation { continuation in
            transport.fetch(request(site.url("hello.cfg"))) { result in
                transport.shutdown()
                continuation.resume(returning: result)
            }
        }
        #expect(result.success() != nil)
        transport.shutdown()
    }

    @Test("invalid engine sizes are rejected")
    func invalidSizes() {
        #expect(throws: TransportError.self) { try CurlTransport(loops: 0) }
        #expect(throws: TransportError.self) { try CurlTransport(maxInFlightPerLoop: 0) }
    }

    @Test(
        "throughput: 5,000 GETs of an 8 KB file (printed, not asserted)",
        .serialized,
        arguments: [(1, 64, false), (1, 256, false), (2, 128, false), (1, 100, true)]
    )
    func throughput(loops: Int, maxInFlight: Int, reuse: Bool) async throws {
        let site = try Site(files: ["8k.bin": pattern(8192)])
        let transport = try CurlTransport(loops: loops, maxInFlightPerLoop: maxInFlight)
        defer { transport.shutdown() }
        let total = 5_000
        let url = site.url("8k.bin")

        let counter = Counter()
        let start = ContinuousClock.now
        let failures = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            for _ in 0..<total {
                transport.fetch(request(url) { $0.reuseConnection = reuse }) { result in
                    let ok = (try? result.get())?.body.count == 8192
                    if let failures = counter.record(ok: ok, total: total) { continuation.resume(returning: failures) }
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let connections = reuse ? "keep-alive" : "fresh-connection"
        print(
            "TransportTests throughput: loops=\(loops) maxInFlight=\(maxInFlight): \(total) \(connections) GETs "
                + "of 8 KB in \(String(format: "%.3f", seconds)) s = \(Int(Double(total) / seconds)) req/s "
                + "(peak in flight \(transport.maxObservedInFlight), failures \(failures))"
        )
        #expect(failures == 0)
    }
}

/// Counts completions from loop threads; returns the failure count once all have arrived.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    private var failures = 0

    func record(ok: Bool, total: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        done += 1
        if !ok { failures += 1 }
        return done == total ? failures : nil
    }
}
