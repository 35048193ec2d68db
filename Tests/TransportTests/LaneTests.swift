// Lanes: actors that run on a libcurl loop's thread and take their completions there, without a task.

import Foundation
import Synchronization
import Testing
import VPhoneTesting

@testable import Transport

/// An actor pinned to a lane, as a fleet phone is: it fetches, and its completions enter it inline when allowed.
private actor LanePhone {
    let lane: CurlLane
    nonisolated var unownedExecutor: UnownedSerialExecutor { lane.executor }
    private(set) var threads: [String] = []
    private(set) var inline = 0
    private(set) var viaTask = 0
    private var done: CheckedContinuation<Void, Never>?
    private var remaining = 0

    init(lane: CurlLane) { self.lane = lane }

    /// Fetches `url` `times` times, one after the other, each started from the previous completion.
    func fetchInTurn(_ url: String, times: Int) async {
        remaining = times
        await withCheckedContinuation { continuation in
            done = continuation
            next(url)
        }
    }

    private func next(_ url: String) {
        threads.append(currentThreadName())
        let lane = self.lane
        lane.fetch(request(url)) { [self] result in
            if lane.canCompleteInline {
                self.assumeIsolated { $0.finished(url, result, inline: true) }
            } else {
                Task { await self.finished(url, result, inline: false) }
            }
        }
    }

    private func finished(_ url: String, _ result: Result<FetchResponse, FetchFailure>, inline: Bool) {
        threads.append(currentThreadName())
        if inline { self.inline += 1 } else { viaTask += 1 }
        remaining -= 1
        if remaining > 0, (try? result.get()) != nil {
            next(url)
        } else {
            done?.resume()
            done = nil
        }
    }

    func whereAmI() -> String { currentThreadName() }
}

@Suite("CurlTransport lanes")
struct CurlLaneTests {
    @Test("an actor on a lane runs on that loop's thread, and its completions enter it inline")
    func actorRunsOnItsLoop() async throws {
        let site = try Site()
        let transport = try CurlTransport(loops: 2, maxInFlightPerLoop: 8)
        defer { transport.shutdown() }
        let lanes = transport.lanes
        #expect(lanes.count == 2)
        let phones = [LanePhone(lane: lanes[0]), LanePhone(lane: lanes[1]), LanePhone(lane: lanes[1])]
        await withTaskGroup(of: Void.self) { group in
            for phone in phones { group.addTask { await phone.fetchInTurn(site.url("hello.cfg"), times: 5) } }
        }
        for (phone, loop) in zip(phones, [0, 1, 1]) {
            #expect(Set(await phone.threads) == ["vphone-curl-\(loop)"])
            #expect(await phone.inline == 5)
            #expect(await phone.viaTask == 0)
        }
        #expect(try site.log(atLeast: 15).count == 15)
    }

    @Test("outside the loop thread, and inside a job, a completion may not enter inline")
    func inlineOnlyBetweenJobs() async throws {
        let transport = try CurlTransport(loops: 1)
        defer { transport.shutdown() }
        let lane = transport.lanes[0]
        #expect(!lane.canCompleteInline)  // the test's own thread
        let phone = LanePhone(lane: lane)
        #expect(await phone.whereAmI() == "vphone-curl-0")
        let insideJob = await Probe(lane: lane).canCompleteInline()
        #expect(insideJob == false)
    }

    @Test("after shutdown, jobs for a lane's actors still run, one at a time, and fetches fail cleanly")
    func jobsAfterShutdown() async throws {
        let site = try Site()
        let transport = try CurlTransport(loops: 1)
        let lane = transport.lanes[0]
        let phone = LanePhone(lane: lane)
        await phone.fetchInTurn(site.url("hello.cfg"), times: 2)
        transport.shutdown()
        #expect(!lane.canCompleteInline)
        // The actor is still usable: its jobs run on the loop's fallback queue, its fetches fail as shut down.
        await phone.fetchInTurn(site.url("hello.cfg"), times: 3)
        #expect(await phone.inline == 2)
        #expect(await phone.viaTask == 1)
        let counter = LaneCounter(lane: lane)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { await counter.bump() } }
        }
        #expect(await counter.value == 200)
        #expect(await counter.overlaps == 0)
    }
}

private actor Probe {
    let lane: CurlLane
    nonisolated var unownedExecutor: UnownedSerialExecutor { lane.executor }
    init(lane: CurlLane) { self.lane = lane }
    func canCompleteInline() -> Bool { lane.canCompleteInline }
}

/// Counts calls and notices two running at once (a serial executor must never allow it).
private actor LaneCounter {
    let lane: CurlLane
    nonisolated var unownedExecutor: UnownedSerialExecutor { lane.executor }
    private let running = Atomic<Int>(0)
    private(set) var value = 0
    private(set) var overlaps = 0
    init(lane: CurlLane) { self.lane = lane }
    func bump() {
        if running.add(1, ordering: .relaxed).newValue != 1 { overlaps += 1 }
        value += 1
        usleep(50)
        running.subtract(1, ordering: .relaxed)
    }
}
