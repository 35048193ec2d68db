/// `vphone boot` options from `VPHONE_*` environment variables, for containers: `VPHONE_MAC=0080F0C571EB` is
/// `--mac 0080F0C571EB`, `VPHONE_INSECURE=1` is `--insecure`.
///
/// ```swift
/// let args = argumentsWithEnvironment(Array(CommandLine.arguments.dropFirst()), ProcessInfo.processInfo.environment)
/// await VPhone.main(args)
/// ```
///
/// Rules, so that a container's command line always has the last word:
/// - only for the `boot` subcommand (the first argument); any other command line is returned unchanged;
/// - a flag already on the command line (`--mac X` or `--mac=X`) is never added again;
/// - an empty variable counts as unset (compose files often pass `VPHONE_PROV_URL=`);
/// - a switch (`VPHONE_ONCE`, `VPHONE_INSECURE`, `VPHONE_SNAPSHOT`) is on for `1`, `true`, `yes`, `y`, `on`, off
///   for `0`, `false`, `no`, `n`, `off` (any case); any other value is passed as `--flag=VALUE`, which the parser
///   refuses with exit 64 rather than guessing;
/// - added flags go after the given ones, before a `--`, in the order of `bootEnvironment`.
///
/// `VPHONE_PROFILE` is not here: the profile loader reads it itself (and falls back to the bundled profile when
/// it names no readable file).
func argumentsWithEnvironment(_ args: [String], _ env: [String: String]) -> [String] {
    guard args.first == "boot" else { return args }
    let end = args.firstIndex(of: "--") ?? args.endIndex
    let given = Set(
        args[..<end].compactMap { arg -> String? in
            guard arg.hasPrefix("--") else { return nil }
            return arg.split(separator: "=", maxSplits: 1).first.map(String.init)
        }
    )
    var added: [String] = []
    for option in bootEnvironment where !given.contains(option.flag) {
        guard let raw = env[option.variable], !raw.isEmpty else { continue }
        if option.isSwitch {
            switch raw.lowercased() {
            case "1", "true", "yes", "y", "on": added.append(option.flag)
            case "0", "false", "no", "n", "off": break
            default: added.append("\(option.flag)=\(raw)")
            }
        } else {
            added += [option.flag, raw]
        }
    }
    return Array(args[..<end]) + added + Array(args[end...])
}

/// One `VPHONE_*` variable and the `vphone boot` flag it stands for.
struct EnvironmentOption: Sendable {
    var variable: String
    var flag: String
    /// A flag without a value (`--once`), set by a yes/no variable.
    var isSwitch: Bool

    init(_ flag: String, isSwitch: Bool = false) {
        self.flag = flag
        self.isSwitch = isSwitch
        // --dhcp-option66 -> VPHONE_DHCP_OPTION66
        variable = "VPHONE_" + String(flag.dropFirst(2).uppercased().map { $0 == "-" ? "_" : $0 })
    }
}

/// Every option of `vphone boot`, as a variable: `VPHONE_` + the flag in capitals, `-` as `_`.
let bootEnvironment: [EnvironmentOption] = [
    // which phone
    EnvironmentOption("--mac"),
    EnvironmentOption("--flash"),
    // where it finds its provisioning server
    EnvironmentOption("--prov-url"),
    EnvironmentOption("--dhcp-option160"),
    EnvironmentOption("--dhcp-option159"),
    EnvironmentOption("--dhcp-option66"),
    EnvironmentOption("--sip-pnp-url"),
    // how it runs
    EnvironmentOption("--once", isSwitch: true),
    EnvironmentOption("--time-scale"),
    EnvironmentOption("--duration"),
    EnvironmentOption("--snapshot", isSwitch: true),
    EnvironmentOption("--record"),
    EnvironmentOption("--replay"),
    // TLS
    EnvironmentOption("--ca-file"),
    EnvironmentOption("--insecure", isSwitch: true),
    // the control API
    EnvironmentOption("--http-port"),
    EnvironmentOption("--http-bind"),
    EnvironmentOption("--admin-password"),
    EnvironmentOption("--admin-password-file"),
    // logging
    EnvironmentOption("--log-format"),
    EnvironmentOption("--log-level"),
]
