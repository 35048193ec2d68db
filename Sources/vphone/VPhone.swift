import ArgumentParser
import Foundation

@main
struct VPhone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vphone",
        abstract:
            "A virtual Panasonic KX-UTG300 SIP phone: boots, provisions itself and keeps its flash like the real one.",
        discussion: """
            Exit codes: 0 success; 10 a file fell back to its saved copy; 11 no usable configuration; \
            64 bad command line; 65 unusable flash file or profile.
            """,
        version: "0.1.0",
        subcommands: [
            Boot.self, Config.self, Events.self, FactoryReset.self, FlashCommand.self, FleetCommand.self,
            ReportCommand.self, Crypt.self, Serve.self, TestServerCommand.self, Demo.self,
        ]
    )

    /// `VPHONE_*` environment variables stand for `vphone boot` flags not given (containers configure that way); an
    /// error about such a flag names its variable.
    static func main() async {
        do {
            var command = try await asyncParseAsRoot(launch.arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            guard code != .success, !launch.sources.isEmpty else { exit(withError: error) }
            let text = fullMessage(for: error)
            if !text.isEmpty {
                FileHandle.standardError.write(Data((namingEnvironmentSources(text, launch.sources) + "\n").utf8))
            }
            Foundation.exit(code.rawValue)
        }
    }
}

/// This process's command line, with the flags of its `VPHONE_*` variables for `vphone boot`.
let launch = EnvironmentArguments(Array(CommandLine.arguments.dropFirst()), ProcessInfo.processInfo.environment)
