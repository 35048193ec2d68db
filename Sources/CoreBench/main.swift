// The phone logic alone, without network: how much CPU a fleet phone's boot-time provisioning costs in PhoneCore
// (parse, merge, saved copies, flash changes), and how that compares with a whole `vphone fleet` phone.
//
// Usage: swift run -c release core-bench TREE [PHONES] [ROUNDS]
//   TREE: a directory served as http://bench/ — KX-UTG300.cfg naming Config{MAC}.cfg, Config{MODEL}.cfg and
//   ConfigCom.cfg (scripts/bench-fleet KEEP=1 leaves one in its work directory as www/ + init-http/).
// Prints µs of CPU per phone for each round (one thread, memory flash, the fleet's sharing on).

import Flash
import Foundation
import PhoneCore
import PhoneRuntime

let args = CommandLine.arguments
guard args.count >= 2 else {
    FileHandle.standardError.write(Data("usage: core-bench TREE [PHONES] [ROUNDS]\n".utf8))
    exit(64)
}
let tree = args[1]
let phones = args.count > 2 ? Int(args[2]) ?? 10_000 : 10_000
let rounds = args.count > 3 ? Int(args[3]) ?? 3 : 3

var cache: [String: [UInt8]] = [:]
@MainActor func body(for url: String) -> [UInt8]? {
    guard let slash = url.range(of: "/", options: .backwards) else { return nil }
    let name = String(url[slash.upperBound...])
    if let b = cache[name] { return b }
    for dir in ["", "/www", "/init-http"] {
        if let d = FileManager.default.contents(atPath: tree + dir + "/" + name) {
            let b = [UInt8](d)
            if !name.hasPrefix("Config0") { cache[name] = b }  // per-MAC files are read each time, as downloaded
            return b
        }
    }
    return nil
}

let profile = try ProfileLoader.load(path: nil)
let prepared = PreparedProfile(profile, sharing: true)
let discovery = DiscoveryOptions(provisioningURL: "http://bench/KX-UTG300.cfg")
let start = MAC("0080F0000001")!
let now = PhoneTime(millisecondsSinceEpoch: 1_800_000_000_000)

for round in 1...rounds {
    var bodies: [Int: [UInt8]] = [:]
    var provisioned = 0
    var cpu: UInt64 = 0
    for i in 0..<phones {
        let mac = start.advanced(by: UInt64(i))
        // Reading the per-MAC file is the network's part: done before the clock starts.
        let identity = Identity(mac: mac, profile: profile, createdAt: now)
        let flash = MemoryFlash(FlashSnapshot(identity: identity), retain: false)
        bodies.removeAll(keepingCapacity: true)
        let t0 = clock_gettime_nsec_np_thread()
        var machine = PhoneMachine(profile: prepared, flash: try flash.load(), discovery: discovery)
        machine.makesEvents = false
        machine.debugEvents = false  // as in `vphone fleet` without --log-level debug
        var pending = machine.handle(.powerOn, at: now)
        var done = false
        while !done {
            var next: [PhoneAction] = []
            for action in pending {
                switch action {
                case .persist(let changes): try flash.apply(changes)
                case .fetch(let order):
                    let t1 = clock_gettime_nsec_np_thread()
                    let b = body(for: order.url)
                    let t2 = clock_gettime_nsec_np_thread()
                    cpu &-= t2 - t1
                    if let b {
                        next += machine.handle(.fetched(id: order.id, status: 200, body: b), at: now)
                    } else {
                        next += machine.handle(
                            .fetchFailed(
                                id: order.id,
                                FetchError(kind: "http_status", httpStatus: 404, message: "404")
                            ),
                            at: now
                        )
                    }
                case .cycleFinished(let report):
                    if report.outcome == .provisioned { provisioned += 1 }
                    done = true
                default: break
                }
            }
            if next.isEmpty { break }
            pending = next
        }
        cpu &+= clock_gettime_nsec_np_thread() - t0
    }
    let us = Double(cpu) / 1000 / Double(phones)
    print(String(format: "round %d: %d phones, %d provisioned, %.1f µs CPU per phone", round, phones, provisioned, us))
}

func clock_gettime_nsec_np_thread() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
