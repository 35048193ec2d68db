// Replays every seed of Fuzz/Corpus and every input the fuzzers found a crash, hang or leak with
// (Fixtures/<target>/) through the same entries the libFuzzer targets call, without a sanitizer, in `swift test`:
// each must come back as a result or the reader's own typed error. A trap would end the test process.

import ConfigFormats
import Crypto
import Flash
import Foundation
import FuzzEntries
import Testing

/// The repository, found from this file (Tests/FuzzRegressionTests/CorpusReplayTests.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The files of one folder, sorted by name; none if it does not exist.
func files(in folder: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    return names.filter { !$0.hasPrefix(".") }.sorted().map { folder + "/" + $0 }
}

func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

/// A private directory for the flash target's image file.
func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "vphone-fuzz-replay-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// What an entry made of one input, as one line: `ok ...` or `error KIND: message`.
func outcome(_ target: String, _ input: [UInt8], directory: String) -> String {
    func line<T, E: Error>(_ result: Result<T, E>, _ describe: (T) -> String, _ kind: (E) -> String) -> String {
        switch result {
        case .success(let value): "ok \(describe(value))"
        case .failure(let error): "error \(kind(error)): \(error)"
        }
    }
    switch target {
    case "config-xml":
        return line(FuzzEntries.configXML(input), { "\($0.format) \($0.entries.count) entries" }, { "\($0.kind)" })
    case "config-text":
        return line(FuzzEntries.configText(input), { "\($0.format) \($0.entries.count) entries" }, { "\($0.kind)" })
    case "base64":
        return line(FuzzEntries.base64(input), { "\($0.count) bytes" }, { "\($0.kind)" })
    case "decrypt":
        return FuzzEntries.decrypt(input).map { line($0, { "\($0.count) bytes" }, { "\($0.kind)" }) }
            .joined(separator: " | ")
    case "flash-image":
        return line(
            FuzzEntries.flashImage(input, at: directory + "/image.flash"),
            { "\($0.identity.mac) \($0.parameterCount) parameters \($0.eventCount) events" },
            { "\($0.kind)" }
        )
    default:
        return "unknown target \(target)"
    }
}

@Suite struct CorpusReplayTests {
    @Test(arguments: FuzzEntries.targets)
    func everySeedAndRegressionInputEndsInAResultOrATypedError(target: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inputs =
            files(in: "\(repositoryRoot)/Fuzz/Corpus/\(target)")
            + files(in: "\(repositoryRoot)/Tests/FuzzRegressionTests/Fixtures/\(target)")
        #expect(!inputs.isEmpty, "no seed corpus for \(target): run Fuzz/make-corpus")
        for path in inputs {
            let result = outcome(target, try bytes(path), directory: directory)
            #expect(result.hasPrefix("ok ") || result.hasPrefix("error "), "\(path): \(result)")
            // The flash target leaves no file behind, so the next input starts from nothing.
            #expect(files(in: directory).isEmpty, "\(path) left \(files(in: directory))")
        }
    }

    /// Seeds whose outcome is known: proof that the entries reach the real readers, not just a first check.
    @Test(arguments: [
        ("config-xml", "prov-KX-UTG300.cfg", "ok xml 3 entries"),
        ("config-xml", "doctype.xml", "error doctype:"),
        ("config-xml", "wrong-root.xml", "error wrongRoot:"),
        ("config-xml", "malformed-initial-incident-body-0001.bin", "error malformed:"),
        ("config-text", "typical.txt", "ok text 3 entries"),
        ("config-text", "lf-only.txt", "error malformed:"),
        ("base64", "pad1", "ok 2 bytes"),
        ("base64", "lone", "error truncated:"),
        ("decrypt", "md5-256.enc", "error wrongKey:"),
        ("flash-image", "from-config.flash", "ok 0080F0C571EB"),
        ("flash-image", "foreign-newer.flash", "error notAnImage:"),
        ("flash-image", "truncated.flash", "error "),
    ])
    func knownSeedsGiveTheirKnownOutcome(target: String, file: String, expected: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let input = try bytes("\(repositoryRoot)/Fuzz/Corpus/\(target)/\(file)")
        #expect(outcome(target, input, directory: directory).hasPrefix(expected))
    }

    @Test("the fleet template seed is the template the config-xml target reads every input against")
    func fleetTemplateSeedIsTheTargetsTemplate() throws {
        let seed = try bytes("\(repositoryRoot)/Fuzz/Corpus/config-xml/fleet-template.xml")
        #expect(seed == Array(FuzzEntries.fleetTemplateText.utf8))
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(outcome("config-xml", seed, directory: directory) == "ok xml 7 entries")
    }

    /// Found while fuzzing: bytes that are not valid in the encoding an `<?xml ... encoding="X"?>` declaration names
    /// made libxml2 print "encoding error : input conversion failed" to stderr (its generic error channel, not the
    /// parser's hook) and the file was then refused for the wrong reason ("<PANASIPPhoneConfig> is never closed").
    @Test(arguments: [("invalid-euc-jp.xml", "EUC-JP"), ("invalid-iso-2022-jp.xml", "ISO-2022-JP")])
    func bytesInvalidInTheDeclaredEncodingAreNamedAsSuch(file: String, encoding: String) throws {
        let input = try bytes("\(repositoryRoot)/Tests/FuzzRegressionTests/Fixtures/config-xml/\(file)")
        let error = try #require(throws: ConfigFormatError.self) { try FuzzEntries.configXML(input).get() }
        #expect(error.kind == .malformed)
        #expect(error.line == 1)
        #expect(error.reason.contains("the bytes are not valid \(encoding)"))
        #expect(error.reason.contains("save the file as UTF-8"))
    }

    @Test func aFileValidInItsDeclaredEncodingStillParses() throws {
        let input = try bytes("\(repositoryRoot)/Tests/FuzzRegressionTests/Fixtures/config-xml/valid-euc-jp.xml")
        let document = try FuzzEntries.configXML(input).get()
        #expect(document.device["A"]?.value == "\u{3042}")
    }

    @Test func theSpecTestVectorDecryptsUnderThe128BitKeyOnly() throws {
        let input = try bytes("\(repositoryRoot)/Fuzz/Corpus/decrypt/spec-test-vector.enc")
        let results = FuzzEntries.decrypt(input)
        #expect(try results[0].get() == Array("<PANASIPPhoneConfig>\r\n</PANASIPPhoneConfig>\r\n".utf8))
        #expect(throws: DecryptionError.self) { try results[2].get() }
        let sha256 = FuzzEntries.decrypt(try bytes("\(repositoryRoot)/Fuzz/Corpus/decrypt/sha256-128.enc"))
        #expect(throws: DecryptionError.self) { try sha256[0].get() }
        if case .failure(let error) = sha256[0] { #expect(error.kind == .otherDigest) }
    }
}
