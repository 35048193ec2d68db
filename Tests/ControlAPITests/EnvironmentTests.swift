import Foundation
import Testing
import VPhoneTesting

/// `argumentsWithEnvironment` (Sources/vphone/Environment.swift), the `VPHONE_*` variables of containers.
///
/// The function lives in the `vphone` executable, which this test target does not link: the suite compiles that one
/// file with `swiftc` beside a three-line driver (a few seconds, once) and runs it with real environments.
@Suite("VPHONE_* environment variables", .serialized)
struct EnvironmentTests {
    /// Runs the driver: `args` in, the resulting arguments out (one per line).
    func expand(_ args: [String], _ env: [String: String]) throws -> [String] {
        let driver = try EnvironmentDriver.shared.get()
        let r = try run(driver, args, environment: env, replaceEnvironment: true)
        guard r.code == 0 else { throw TestError("driver failed (\(r.code)): \(r.stderr)") }
        return r.stdout.isEmpty
            ? [] : r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func variablesBecomeBootFlags() throws {
        let env = [
            "VPHONE_MAC": "0080F0C571EB", "VPHONE_PROV_URL": "http://prov:8780/",
            "VPHONE_FLASH": "/var/lib/vphone/p.flash",
            "VPHONE_HTTP_PORT": "8080", "VPHONE_HTTP_BIND": "0.0.0.0", "VPHONE_DHCP_OPTION66": "192.0.2.10",
            "VPHONE_TIME_SCALE": "60", "VPHONE_LOG_FORMAT": "json", "VPHONE_LOG_LEVEL": "debug",
            "VPHONE_ADMIN_PASSWORD_FILE": "/run/secrets/pw", "VPHONE_CA_FILE": "/ca.pem", "HOME": "/root",
        ]
        #expect(
            try expand(["boot"], env) == [
                "boot", "--mac=0080F0C571EB", "--flash=/var/lib/vphone/p.flash", "--prov-url=http://prov:8780/",
                "--dhcp-option66=192.0.2.10", "--time-scale=60", "--ca-file=/ca.pem", "--http-port=8080",
                "--http-bind=0.0.0.0", "--admin-password-file=/run/secrets/pw", "--log-format=json",
                "--log-level=debug",
            ]
        )
    }

    @Test func theCommandLineWins() throws {
        let env = ["VPHONE_MAC": "0080F0000002", "VPHONE_PROV_URL": "http://env/", "VPHONE_ONCE": "1"]
        #expect(
            try expand(["boot", "--mac", "0080F0000001", "--prov-url=http://cli/"], env) == [
                "boot", "--mac", "0080F0000001", "--prov-url=http://cli/", "--once",
            ]
        )
        #expect(
            try expand(["boot", "--once"], env) == ["boot", "--once", "--mac=0080F0000002", "--prov-url=http://env/"]
        )
    }

    @Test func onlyForBoot() throws {
        let env = ["VPHONE_MAC": "0080F0000002", "VPHONE_INSECURE": "1"]
        #expect(try expand(["config", "show"], env) == ["config", "show"])
        #expect(try expand(["fleet", "--count", "5"], env) == ["fleet", "--count", "5"])
        #expect(try expand([], env) == [])
        #expect(try expand(["--help"], env) == ["--help"])
    }

    @Test(arguments: [
        ("1", ["--insecure"]), ("true", ["--insecure"]), ("YES", ["--insecure"]), ("on", ["--insecure"]),
        ("y", ["--insecure"]), ("0", []), ("false", []), ("No", []), ("off", []), ("", []),
        ("maybe", ["--insecure=maybe"]),
    ])
    func switches(value: String, flags: [String]) throws {
        #expect(try expand(["boot"], ["VPHONE_INSECURE": value]) == ["boot"] + flags)
    }

    @Test func emptyValuesAreUnsetAndFlagsGoBeforeADoubleDash() throws {
        #expect(
            try expand(["boot"], ["VPHONE_PROV_URL": "", "VPHONE_MAC": "0080F0000001"]) == [
                "boot", "--mac=0080F0000001",
            ]
        )
        #expect(try expand(["boot", "--", "x"], ["VPHONE_SNAPSHOT": "1"]) == ["boot", "--snapshot", "--", "x"])
    }

    /// A value starting with `-` is the flag's value, never a flag of its own (`--time-scale -1` would be read as a
    /// missing value and an unknown option `-1`).
    @Test func aValueStartingWithADashStaysTheFlagsValue() throws {
        #expect(
            try expand(["boot"], ["VPHONE_TIME_SCALE": "-1", "VPHONE_SIP_PNP_URL": "--once"]) == [
                "boot", "--sip-pnp-url=--once", "--time-scale=-1",
            ]
        )
    }

    /// Every option `vphone boot --help` lists has its variable (needs the built binary).
    @Test(.enabled(if: VPhoneBinary.hasControlAPI, VPhoneBinary.skipReason))
    func everyBootOptionHasAVariable() throws {
        let help = try run(VPhoneBinary.path, ["boot", "--help"]).stdout
        // every "--word" in the help text (the option list and the prose that names options)
        let flags = Set(
            help.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "-") })
                .filter { $0.hasPrefix("--") && $0.count > 2 && $0.dropFirst(2).first?.isLetter == true }
                .map(String.init)
        )
        let listed = try expand(["--list"], [:])  // the driver's own mode: every flag of the table
        let missing = flags.subtracting(listed).subtracting(["--help", "--version", "--profile"])
        #expect(missing.isEmpty, "vphone boot options with no VPHONE_ variable: \(missing.sorted())")
        #expect(
            Set(listed).isSubset(of: flags),
            "variables for options boot does not have: \(Set(listed).subtracting(flags))"
        )
    }
}

/// Sources/vphone/Environment.swift compiled with a driver: `driver ARGS...` prints the expanded arguments;
/// `driver --list` prints every flag of `bootEnvironment`.
final class EnvironmentDriver: @unchecked Sendable {
    static let shared = EnvironmentDriver()
    private let lock = NSLock()
    private var built: Result<String, TestError>?

    func get() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if built == nil { built = Self.build() }
        return try built!.get()
    }

    private static func build() -> Result<String, TestError> {
        guard let swiftc = findExecutable("swiftc") else { return .failure(TestError("swiftc not on PATH")) }
        do {
            // Beside the test bundle, in the build directory: rebuilt each run, removed by `swift package clean`.
            let dir =
                URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
                + "/vphone-env-driver"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let main = """
                let args = Array(CommandLine.arguments.dropFirst())
                if args == ["--list"] {
                    for option in bootEnvironment { print(option.flag) }
                } else {
                    for a in argumentsWithEnvironment(args, currentEnvironment()) { print(a) }
                }

                """
            let environment = """
                import Foundation
                func currentEnvironment() -> [String: String] { ProcessInfo.processInfo.environment }

                """
            try main.write(toFile: dir + "/main.swift", atomically: true, encoding: .utf8)
            try environment.write(toFile: dir + "/Current.swift", atomically: true, encoding: .utf8)
            let source = TestProfiles.repositoryRoot + "/Sources/vphone/Environment.swift"
            let r = try run(
                swiftc,
                [
                    "-module-name", "EnvDriver", "-o", dir + "/driver", dir + "/main.swift", dir + "/Current.swift",
                    source,
                ]
            )
            guard r.code == 0 else { return .failure(TestError("swiftc failed: \(r.stderr)")) }
            return .success(dir + "/driver")
        } catch {
            return .failure(TestError("cannot build the driver: \(error)"))
        }
    }
}
