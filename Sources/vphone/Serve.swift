import ArgumentParser
import Foundation
import HTTPServing
import Logging
import TestServer

/// Where and how a provisioning server listens (`serve`, `testserver`).
struct ServerOptions: ParsableArguments {
    @Argument(
        help:
            "Directory of provisioning files to serve. Without it: the example tree built into vphone (examples/prov), its URLs pointing at this server."
    )
    var directory: String?

    @Option(help: "TCP port (0: any free port, printed at start).")
    var port: Int = 8780

    @Option(help: "Address to listen on: 127.0.0.1 (default, this host only), 0.0.0.0 or :: for every interface.")
    var bind: String = "127.0.0.1"

    @Flag(help: "Print no access log (one line per request on standard output otherwise).")
    var quiet = false

    func tree() throws -> ServedTree {
        guard let directory else { return .example }
        do {
            return try .directory(directory)
        } catch {
            fail("\(error)")
            throw Exit.usage
        }
    }

    /// Serves until SIGINT or SIGTERM, printing each request.
    func serve(rules: [Rule], rulesFile: String? = nil, what: String) async throws {
        let logger = Logger(label: "vphone")
        let quiet = self.quiet
        let server: ProvisioningServer
        do {
            server = try await ProvisioningServer.start(
                tree: try tree(),
                rules: rules,
                rulesFile: rulesFile,
                bind: bind,
                port: port,
                logger: logger,
                onRequest: { request in
                    if !quiet { FileHandle.standardOutput.write(Data((request.line + "\n").utf8)) }
                },
                onProblem: { fail($0) }
            )
        } catch let error as HTTPListenerError {
            fail("\(error)")
            throw Exit.usage
        }
        let source = directory ?? "the built-in example tree (phones boot with --prov-url \(server.origin)/)"
        fail("\(what) \(source) on \(server.origin)/ (stop with Ctrl-C)")
        for rule in server.rules { fail("rule \(rule): \(rule.behaviour.summary)") }
        if let rulesFile { fail("rules file \(rulesFile): read again whenever it changes") }
        await waitForStopSignal()
        await server.stop()
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Serve a directory of provisioning files over HTTP, or the built-in example tree (the embedded default).",
        discussion: """
            A small static provisioning server (GET and HEAD), so that a phone can boot with nothing else installed:

              vphone serve &                 # the built-in example tree on http://127.0.0.1:8780/
              vphone boot --mac 0080F0C571EB --prov-url http://127.0.0.1:8780/ --once

            With a DIRECTORY, files are read at every request (edit them while phones run); paths that leave the \
            directory, also through symbolic links, are not served. To make it misbehave, see `vphone testserver`.
            """
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        try await options.serve(rules: [], what: "serving")
    }
}

struct TestServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testserver",
        abstract: "A provisioning server that misbehaves on the paths you name, to test how phones (and vphone) cope.",
        discussion: """
            Same server as `vphone serve`, with rules: --rule PATTERN=BEHAVIOUR, PATTERN a glob on the request path \
            (* and ?), the first matching rule applies; paths no rule matches are served normally.

              vphone testserver examples/prov --rule '/ConfigCom.cfg=503' --rule '/Config0080F0*.cfg=close-mid-body'

            Behaviours:
            \(Misbehaviour.catalogue.map { "  \($0.syntax.padding(toLength: 16, withPad: " ", startingAt: 0)) \($0.summary)" }.joined(separator: "\n"))
              other:PATH       serve PATH of the tree instead
              ok               serve normally (to exempt paths from a later, broader rule)
            Any status from 400 to 599 is accepted. The README's table says what a phone does in each case.
            """
    )

    @OptionGroup var options: ServerOptions

    @Option(name: .customLong("rule"), help: "PATTERN=BEHAVIOUR, e.g. '/ConfigCom.cfg=503' (repeatable).")
    var ruleTexts: [String] = []

    @Option(
        help:
            "A file of rules, one PATTERN=BEHAVIOUR per line (# comments), after the --rule ones. Read again whenever it changes: edit it to break (or mend) the server while phones run."
    )
    var rulesFile: String?

    func validate() throws {
        _ = try rules()
        if let rulesFile {
            guard let text = try? String(contentsOfFile: rulesFile, encoding: .utf8) else {
                throw ValidationError("--rules-file \(rulesFile): cannot be read (create it, even empty)")
            }
            do { _ = try Rule.parseFile(text, name: rulesFile) } catch { throw ValidationError("\(error)") }
        }
    }

    func rules() throws -> [Rule] { try Rule.options(ruleTexts) }

    func run() async throws {
        try await options.serve(rules: try rules(), rulesFile: rulesFile, what: "serving (with misbehaviour)")
    }
}

extension Rule {
    /// The rules of repeated `--rule PATTERN=BEHAVIOUR` options (`testserver`, `demo`); a bad one is a usage error.
    static func options(_ texts: [String]) throws -> [Rule] {
        try texts.map { text in
            do {
                return try Rule(parsing: text)
            } catch {
                throw ValidationError("--rule: \(error)")
            }
        }
    }
}
