import ArgumentParser
import Foundation
import HTTPServing
import Logging
import PhoneCore
import Synchronization
import TestServer

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot one virtual KX-UTG300 against the built-in example server and show what it did.",
        discussion: """
            Needs nothing else: starts `vphone serve` in this process (the built-in example tree, on a free port of \
            127.0.0.1), powers on a factory-fresh phone with `vphone boot --once`, then prints what the server saw, \
            the effective configuration with the file each value came from (`vphone config show --changed`) and the \
            timeline of the boot (`vphone events --timeline`). The flash image is kept (its path is printed) so that \
            you can go on with `vphone config`, `vphone events` or `vphone boot` on it.

            Add --rule PATTERN=BEHAVIOUR (as for `vphone testserver`) to see the phone meet a broken server, e.g. \
            --rule '/ConfigCom.cfg=503'. Exit code: that of the boot (0 provisioned, 10 a file fell back, 11 none).
            """
    )

    @Option(help: "The phone's MAC address (the example tree has a standard file for 0080F0C571EB).")
    var mac: String = "0080F0C571EB"

    @Option(help: "Where to create the phone's flash image (default: a new private directory under the temp dir).")
    var flash: String?

    @Option(help: "Port of the example server (0: any free port).")
    var port: Int = 0

    @Option(name: .customLong("rule"), help: "Make the example server misbehave: PATTERN=BEHAVIOUR (repeatable).")
    var ruleTexts: [String] = []

    func validate() throws {
        guard MAC(mac) != nil else { throw ValidationError("--mac \(mac): expected 12 hex digits, e.g. 0080F0C571EB") }
        _ = try Rule.options(ruleTexts)
        if let flash, FileManager.default.fileExists(atPath: flash) {
            throw ValidationError("--flash \(flash): already exists; the demo boots a factory-fresh phone")
        }
    }

    func run() async throws {
        let rules = try Rule.options(ruleTexts)
        // What the server saw, shown after the boot.
        let seen = Mutex<[ServedRequest]>([])
        let server: ProvisioningServer
        do {
            server = try await ProvisioningServer.start(
                tree: .example,
                rules: rules,
                port: port,
                logger: Logger(label: "vphone", factory: { _ in SwiftLogNoOpLogHandler() }),
                onRequest: { request in seen.withLock { $0.append(request) } }
            )
        } catch {
            fail("\(error)")
            throw Exit.usage
        }
        let image = try flash ?? (scratchDirectory(reason: "--demo") + "/\(mac.uppercased()).flash")
        let provURL = server.origin + "/"
        heading("vphone serve (built-in example tree) on \(provURL)")
        for rule in rules { print("   rule \(rule): \(rule.behaviour.summary)") }
        heading("vphone boot --flash \(image) --mac \(mac) --prov-url \(provURL) --once")
        var code: Int32 = 0
        do {
            let boot = try Boot.parse(["--flash", image, "--mac", mac, "--prov-url", provURL, "--once"])
            try await boot.run()
        } catch let exit as ExitCode {
            code = exit.rawValue
        }
        await server.stop()
        print("   exit code \(code): \(Self.meaning(code))")
        heading("what the server saw")
        for request in seen.withLock({ $0 }) { print("   " + request.line) }
        guard code == 0 || code == 10 || code == 11 else { throw ExitCode(code) }
        heading("vphone config show --flash \(image) --changed")
        let show = try Config.Show.parse(["--flash", image, "--changed"])
        try show.run()
        heading("vphone events \(image) --timeline")
        let events = try Events.parse([image, "--timeline"])
        try events.run()
        heading("the flash image stays at \(image)")
        if code != 0 { throw ExitCode(code) }
    }

    private func heading(_ text: String) {
        print("\n== \(text)")
    }

    static func meaning(_ code: Int32) -> String {
        switch code {
        case 0: return "every configured file downloaded and applied"
        case 10: return "at least one file failed; its saved copy (or nothing) stood in"
        case 11: return "no usable configuration at all"
        default: return "see the message above"
        }
    }
}
