import ArgumentParser
import ConfigFormats
import Flash
import Foundation
import PhoneCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `vphone flash`: look into, copy out, copy in, compare and build flash images (Storage/README.md).
struct FlashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "Inspect, export, import, compare and build flash images; extract one from a fleet store.",
        discussion: """
            A flash image is one phone's flash: one SQLite file (Storage/README.md). These commands never change \
            an existing image: an image that is missing, not an image, from a newer vphone, truncated or damaged is \
            refused with a message saying which, and exit code 65.
            """,
        subcommands: [Info.self, Export.self, Import.self, Diff.self, FromConfig.self, Extract.self]
    )

    // MARK: - info

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Summarise an image: identity, schema, each file's last outcome, key present, timers, counts.",
            discussion: "The key itself is never printed. Runs SQLite's integrity check and reports its result."
        )

        @Argument(help: "The flash image.") var image: String

        @Flag(help: "Print one JSON object.") var json = false

        func validate() throws { try requireNonEmptyPaths([("IMAGE", image)]) }

        func run() throws {
            let store = try openImage(image)
            let info: FlashInfo
            do { info = try FlashInfo(store: store) } catch {
                fail("\(error)")
                throw Exit.data
            }
            try writeOut(json ? info.json : Array(info.text.utf8))
        }
    }

    // MARK: - export

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write everything in an image as portable, human-readable JSON.",
            discussion: """
                Secrets are masked unless --include-secrets: the file key, secret parameters and local edits (the \
                profile's "secrets"), secret values inside saved files, URL credentials. An export made with \
                --include-secrets is created with mode 0600. export -> import -> export gives the same bytes.
                """
        )

        @Argument(help: "The flash image.") var image: String

        @Option(help: "The export file, or - for standard output.") var to: String

        @Flag(help: "Write the key and secret values as they are (treat the export like the image).")
        var includeSecrets = false

        @Flag(help: "Replace the export file if it exists.") var force = false

        @OptionGroup var profileOption: ProfileOption

        func validate() throws {
            try requireNonEmptyPaths([("IMAGE", image), ("--to", to)])
            if to != "-" { try checkOutputPath(to, option: "--to") }
        }

        func run() throws {
            let profile = try profileOption.load()
            if to != "-", sameFile(to, image) {
                fail("--to \(to) is the image itself: export to another file")
                throw Exit.usage
            }
            let store = try openImage(image)
            let bytes: [UInt8]
            do { bytes = try store.exportJSON(includeSecrets: includeSecrets, isSecret: profile.isSecret) } catch {
                fail("\(error)")
                throw Exit.data
            }
            if to == "-" {
                try writeOut(bytes)
                return
            }
            try writeFile(to, bytes, private: includeSecrets, replace: force)
        }
    }

    // MARK: - import

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new image from a JSON export.",
            discussion: """
                The image is written whole or not at all, and never over an existing file. An export with masked \
                secrets is refused: importing it would plant "********" as passwords. --allow-masked imports it \
                without the masked entries (factory defaults instead, no key, no saved copy of a masked file).

                Local edits are imported as they are, even those `vphone config set` would refuse (a parameter the \
                profile does not know, one provisioned read-only, a value the phone would not use): the image is \
                often a phone's state from the field, to be reproduced faithfully. Each such edit gets a warning on \
                standard error, naming it, the image and the reason (secret values and URL credentials masked); the \
                exit code stays 0. An edit in force is judged against the value under it in the image's saved files, \
                as the phone merged them. An export of another model than --profile's gets one line saying its edits \
                were not checked.
                """
        )

        @Argument(help: "The export file, or - for standard input.") var file: String

        @Option(help: "The new flash image (must not exist).") var to: String

        @Flag(help: "Import an export with masked secrets, leaving the masked entries out.")
        var allowMasked = false

        @OptionGroup var profileOption: ProfileOption

        func validate() throws { try requireNonEmptyPaths([("FILE", file), ("--to", to)]) }

        func run() throws {
            let profile = try profileOption.load()
            let bytes: [UInt8]
            if file == "-" {
                bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
            } else {
                guard let data = FileManager.default.contents(atPath: file) else {
                    fail("cannot read the export \(file): check the path and its permissions")
                    throw Exit.data
                }
                bytes = Array(data)
            }
            let source = file == "-" ? "standard input" : file
            do {
                let export = try FlashExport.parse(bytes, source: source)
                try FlashStore.importExport(export, from: source, to: to, allowMasked: allowMasked).close()
                let masked = export.maskedEntries
                if !masked.isEmpty {
                    fail(
                        "left out \(masked.count) masked entr\(masked.count == 1 ? "y" : "ies"): \(masked.joined(separator: ", "))"
                    )
                }
                warnAboutLocalEdits(export.snapshot, profile: profile)
            } catch {
                fail("\(error)")
                throw Exit.data
            }
            print("imported \(file) into \(to)")
        }

        /// One warning per imported local edit that `config set` would refuse: kept as it is, but said.
        func warnAboutLocalEdits(_ snapshot: FlashSnapshot, profile: DeviceProfile) {
            // Another model's parameters would all look unknown: one line saying so, not one per edit.
            if snapshot.identity.model != profile.model {
                fail(
                    "warning: \(to) is a \(snapshot.identity.model) and the profile a \(profile.model): its local edits "
                        + "were not checked; give --profile with the \(snapshot.identity.model)'s profile to check them"
                )
                return
            }
            for refusal in LocalEditRule.problems(in: snapshot, profile: profile) {
                let value = snapshot.localEdits[refusal.name]?.value ?? ""
                let shown = profile.isSecret(refusal.name) ? "********" : redactURL(value)
                fail(
                    "warning: local edit \(refusal.name) = \"\(shown)\" in \(to): \(refusal.message); "
                        + "imported as it is (`vphone config set` refuses such an edit on the image as provisioned)"
                )
            }
        }
    }

    // MARK: - diff

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what differs between two images.",
            discussion: """
                Identity, boot count, parameters with their sources, local edits, saved files, file outcomes, the \
                key (changed or not, never its value), root certificates and timers; secret values are masked. \
                Lines start with + (only in B), - (only in A) or ~ (both, different). Exit codes as diff(1): 0 the \
                images are the same, 1 they differ; 65 an image is unusable.
                """
        )

        @Argument(help: "The first image (A).") var a: String
        @Argument(help: "The second image (B).") var b: String

        func validate() throws { try requireNonEmptyPaths([("A", a), ("B", b)]) }

        @Flag(help: "Print one JSON object.") var json = false

        @OptionGroup var profileOption: ProfileOption

        func run() throws {
            let profile = try profileOption.load()
            let first = try loadSnapshot(try openImage(a))
            let second = try loadSnapshot(try openImage(b))
            let diff = FlashDiff.compare(first, second, isSecret: profile.isSecret)
            if json {
                try writeOut(diff.json)
            } else if !diff.isEmpty {
                try writeOut(Array("--- \(a)\n+++ \(b)\n\(diff.text)".utf8))
            }
            if !diff.isEmpty { throw ExitCode(1) }
        }
    }

    // MARK: - from-config

    struct FromConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "from-config",
            abstract: "Build an image from configuration files, as if the phone had downloaded them.",
            discussion: """
                Files named without an option fill the standard, product and master files in that order \
                (strongest first: standard beats product beats master, spec §4); --initial, --standard, --product \
                and --master place a file explicitly. Each file is stored as its saved copy with the URL file://NAME \
                and the outcome "downloaded"; the parameters are merged as the phone merges them; a plain standard \
                file carrying CFG_FILE_KEY installs the key; timers are armed as after a successful first boot.

                Panasonic XML and Standard Format text are both accepted whatever the profile says (customers send \
                files of sibling models, and "export operational values" dumps): booting the image with a profile \
                that reads XML only, a text file that has to stand in as a saved copy is refused as invalid.
                """
        )

        @Argument(help: "Configuration files: standard, then product, then master.") var files: [String] = []

        @Option(help: "The initial file (<Initial> with <CfgFiles>).") var initial: String?
        @Option(help: "The standard file (the strongest).") var standard: String?
        @Option(help: "The product file.") var product: String?
        @Option(help: "The master file.") var master: String?

        @Option(help: "The phone's MAC address, 12 hex digits, unicast (e.g. 0080F0C571EB).") var mac: MAC

        @Option(help: "The new flash image (must not exist).") var to: String

        @Option(help: "The phone time of the download, e.g. 2026-11-27T08:00:00.000Z (default: now).")
        var time: String?

        @OptionGroup var profileOption: ProfileOption

        func validate() throws {
            try mac.requirePhoneMAC("--mac")
            _ = try assignments()
            if let time, PhoneTime(iso8601: time) == nil {
                throw ValidationError("--time \(time) is not a time like 2026-11-27T08:00:00.000Z (UTC)")
            }
        }

        /// Which file is which kind: explicit options first, then the positional files in the free device kinds.
        func assignments() throws -> [(FileKind, String)] {
            var out: [(FileKind, String)] = []
            for (kind, path) in [
                (FileKind.initial, initial), (.standard, standard), (.product, product), (.master, master),
            ] {
                if let path { out.append((kind, path)) }
            }
            let free = FileKind.deviceFiles.filter { kind in !out.contains { $0.0 == kind } }
            guard files.count <= free.count else {
                throw ValidationError(
                    "\(files.count) file(s) given without an option but only \(free.count) device file(s) left "
                        + "(\(free.map(\.rawValue).joined(separator: ", "))): at most one file per kind"
                )
            }
            out += zip(free, files).map { ($0, $1) }
            guard !out.isEmpty else {
                throw ValidationError("give at least one configuration file (FILE..., or --standard FILE, ...)")
            }
            return out
        }

        func run() throws {
            let profile = try profileOption.load()
            // Before reading any file: the store refuses an existing target too, but say it first.
            if FileManager.default.fileExists(atPath: to) {
                fail("\(to) already exists: flash from-config makes a new image; move it away or choose another --to")
                throw Exit.data
            }
            let now = time.flatMap(PhoneTime.init(iso8601:)) ?? wallClock()
            var configFiles: [ConfigFile] = []
            for (kind, path) in try assignments().sorted(by: { order($0.0) < order($1.0) }) {
                guard let data = FileManager.default.contents(atPath: path) else {
                    fail("cannot read \(path): check the path and its permissions")
                    throw Exit.data
                }
                let bytes = Array(data)
                let name = URL(fileURLWithPath: path).lastPathComponent
                var document: ConfigDocument
                do {
                    // Both formats, whatever the profile reads (see the discussion), within the profile's size limits.
                    document = try ConfigParser.parse(
                        bytes,
                        file: path,
                        accepting: [.xml, .text],
                        limits: profile.parserLimits
                    )
                } catch {
                    fail("\(error)")
                    throw Exit.data
                }
                // As the phone reads it: the parameters of lines the model does not have are left out, with a warning.
                if let kept = profile.withoutAbsentLines(document) { document = kept }
                for warning in document.warnings { fail("\(path): \(warning)") }
                configFiles.append(
                    ConfigFile(
                        name: name,
                        bytes: bytes,
                        input: MergeInput(kind: kind, document: document, fresh: true),
                        warnings: document.warnings.map(\.description)
                    )
                )
            }
            let identity = Identity(mac: mac, profile: profile, createdAt: now)
            let changes = ProvisionedImage.changes(files: configFiles, profile: profile, at: now)
            do {
                try FlashStore.create(at: to, identity: identity, applying: changes).close()
            } catch {
                fail("\(error)")
                throw Exit.data
            }
            let kinds = configFiles.map { "\($0.input.kind.rawValue) \($0.name)" }.joined(separator: ", ")
            print(
                "built \(to) for \(mac) (\(profile.model)) from \(kinds): \(changes.parameters?.count ?? 0) parameter(s)"
            )
        }
    }
}

// MARK: - extract

extension FlashCommand {
    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pull one phone out of a fleet store as a normal flash image.",
            discussion: """
                STORE is the file of vphone fleet --store. The image holds everything the phone had: identity, \
                boot count, saved files, parameters, local edits, timers, file outcomes, key, root certificates and \
                its event log (a fleet store keeps each phone's newest 1,000 entries), so a phone that failed in a \
                load test can be booted, inspected or replayed alone. The image is written whole or not at all, and \
                never over an existing file. A store left by a crash is first rolled back to its last whole batch.
                """
        )

        @Argument(help: "The fleet store.") var store: String

        @Option(help: "The phone's MAC address, 12 hex digits.") var mac: MAC

        @Option(help: "The new flash image (must not exist).") var to: String

        func validate() throws { try requireNonEmptyPaths([("STORE", store), ("--to", to)]) }

        func run() throws {
            if sameFile(to, store) {
                fail("--to \(to) is the fleet store itself: extract to a new file")
                throw Exit.usage
            }
            do {
                let fleet = try FleetStore.open(at: store)
                defer { fleet.close() }
                try fleet.extract(mac: mac, to: to)
            } catch {
                fail("\(error)")
                throw Exit.data
            }
            print("extracted \(mac) from \(store) into \(to)")
        }
    }
}

// MARK: - Helpers

/// Download order (spec §3): initial, standard, product, master.
private func order(_ kind: FileKind) -> Int { FileKind.allCases.firstIndex(of: kind) ?? 0 }

/// Opens an image read-only; a missing or unusable one ends the command with exit 65.
private func openImage(_ path: String) throws -> FlashStore {
    do {
        return try FlashStore.open(at: path, readOnly: true)
    } catch {
        fail("\(error)")
        throw Exit.data
    }
}

private func writeOut(_ bytes: [UInt8]) throws {
    FileHandle.standardOutput.write(Data(bytes))
}

/// Whether two paths name the same existing file.
private func sameFile(_ a: String, _ b: String) -> Bool {
    var x = stat()
    var y = stat()
    guard stat(a, &x) == 0, stat(b, &y) == 0 else { return false }
    return x.st_dev == y.st_dev && x.st_ino == y.st_ino
}
