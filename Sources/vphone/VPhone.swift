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

    /// `VPHONE_*` environment variables stand for `vphone boot` flags not given (containers configure that way).
    static func main() async {
        let args = Array(CommandLine.arguments.dropFirst())
        await main(argumentsWithEnvironment(args, ProcessInfo.processInfo.environment))
    }
}
