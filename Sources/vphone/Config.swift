import ArgumentParser
import Flash
import Foundation
import PhoneCore

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or edit the phone's configuration.",
        subcommands: [Show.self, Set.self]
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every effective parameter with the source it came from.",
            discussion: """
                Sources: standard, product, master, initial (provisioned files), local (a local edit), factory \
                (the profile's default). Per-line parameters are named NAME_n. Secrets are masked.
                """
        )
        @OptionGroup var location: FlashLocation
        @OptionGroup var profileOption: ProfileOption

        @Flag(help: "Print one JSON object {\"NAME\": {\"value\": ..., \"source\": ...}}.")
        var json = false

        @Flag(help: "Print only parameters not at their factory default.")
        var changed = false

        @Flag(help: "Print secrets (passwords, the file key, a URL's user:password@) in clear instead of masked.")
        var revealSecrets = false

        func validate() throws { try location.requireGiven() }

        func run() throws {
            let profile = try profileOption.load()
            let store = try location.open(readOnly: true)
            let snapshot = try loadSnapshot(store)
            var rows = ConfigView.effective(profile: profile, snapshot: snapshot)
            if changed { rows.removeAll { $0.source == .factory } }
            // A secret's value, and the credentials in a URL (user:password@), unless --reveal-secrets.
            func shown(_ r: EffectiveValue) -> String {
                if revealSecrets { return r.value }
                return r.secret && !r.value.isEmpty ? "********" : redactURL(r.value)
            }
            if json {
                var object: [String: [String: String]] = [:]
                for r in rows {
                    var o = ["value": shown(r), "source": r.source.rawValue]
                    if !r.perm.isEmpty { o["perm"] = r.perm }
                    if !r.access.isEmpty { o["access"] = r.access }
                    object[r.name] = o
                }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let width = rows.map(\.name.count).max() ?? 0
            for r in rows {
                let perm = r.perm.isEmpty ? "" : " perm=\(r.perm)"
                print(
                    "\(r.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(r.source.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))  \"\(shown(r))\"\(perm)"
                )
            }
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Edit a parameter locally, as on the phone's web UI.",
            discussion: """
                A local edit beats every provisioned file, unless a provisioned value carries perm="!" (then the \
                next download overwrites it). A parameter provisioned with perm="R" refuses local edits (exit 65), \
                and so does a value the phone would not use: a timer out of range (CFG_CYCLIC_INTVL 1...40320, \
                CFG_RTRY_INTVL 1...1440 minutes), a CFG_RESYNC_TIME that is not HH:MM, a TIME_ZONE outside \
                -840...840, a switch that is not Y or N (Yes and No, in any case, too), a URL it downloads from that it \
                would refuse (a scheme other than http, https, tftp or ftp, over 384 characters, a bad port, a space \
                or control character) (exit 65). \
                An empty CFG_RESYNC_TIME, TIME_ZONE or URL unsets it.
                """
        )
        @Argument(help: "Parameter name, e.g. CFG_CYCLIC or SIP_AUTHID_1.") var name: String
        @Argument(help: "New value.") var value: String
        @OptionGroup var location: FlashLocation
        @OptionGroup var profileOption: ProfileOption

        func validate() throws { try location.requireGiven() }

        func run() throws {
            let profile = try profileOption.load()
            let store = try location.open()
            let snapshot = try loadSnapshot(store)
            do {
                let changes = try LocalEditRule.apply(
                    name: name,
                    value: value,
                    snapshot: snapshot,
                    profile: profile,
                    at: wallClock()
                )
                try store.apply(changes)
            } catch let refusal as LocalEditRefusal {
                fail(refusal.message)
                throw Exit.data
            } catch {
                fail("\(error)")
                throw Exit.data
            }
            let shown = profile.isSecret(name) ? "********" : redactURL(value)
            print("\(name) = \"\(shown)\" (local edit)")
        }
    }
}

struct FactoryReset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "factory-reset",
        abstract: "Clear everything in flash but the phone's identity (MAC, model, firmware).",
        discussion: "Saved files, the key, local edits, timers and the event log are erased (spec §9)."
    )
    @OptionGroup var location: FlashLocation

    func validate() throws { try location.requireGiven() }

    func run() throws {
        let store = try location.open()
        let snapshot = try loadSnapshot(store)
        do {
            try store.factoryReset(
                event: LogEntry(
                    at: wallClock(),
                    boot: 0,
                    level: .warning,
                    kind: "factory-reset",
                    message: "factory reset: saved files, key, local edits, timers and events cleared"
                )
            )
        } catch {
            fail("\(error)")
            throw Exit.data
        }
        print("factory reset \(snapshot.identity.mac) (\(location.path))")
    }
}
