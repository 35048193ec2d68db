import Bundled
import Foundation
import PhoneCore

/// Why a device profile cannot be used (exit code 65).
public struct ProfileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "profile \(path): \(message)" }
}

public enum ProfileLoader {
    /// The bundled profile's file name.
    public static let defaultName = "KX-UTG300.json"

    /// The variable that stands for `--profile` when it is not given (every command; empty counts as unset).
    public static let environmentVariable = "VPHONE_PROFILE"

    /// Where the bundled profile is looked for when neither `--profile` nor `$VPHONE_PROFILE` is given, in order:
    /// `Profiles/` in the current directory, `Profiles/` beside (or above) the executable,
    /// `/usr/local/share/vphone/Profiles`, `/usr/share/vphone/Profiles`.
    public static func defaultCandidates(executable: String = CommandLine.arguments.first ?? "") -> [String] {
        var out: [String] = []
        out.append(FileManager.default.currentDirectoryPath + "/Profiles/" + defaultName)
        var dir = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            out.append(dir.appendingPathComponent("Profiles/" + defaultName).path)
            dir.deleteLastPathComponent()
        }
        out.append("/usr/local/share/vphone/Profiles/" + defaultName)
        out.append("/usr/share/vphone/Profiles/" + defaultName)
        return out
    }

    /// What `load(path: nil)` reports as the path of the profile built into the binary.
    public static let builtInName = "(built-in) " + BundledFiles.profileName

    /// Loads `path`; when nil, the file `$VPHONE_PROFILE` names, held to the same rules as `--profile` (a file
    /// that cannot be read is an error naming the variable, never a silent fall-back to another profile); else the
    /// first profile file of `defaultCandidates()`, or the profile built into the binary when there is none (a lone
    /// `vphone` binary still boots).
    /// - Throws: `ProfileError` naming the file (and the variable it came from), the problem and the fix.
    public static func load(
        path: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ProfileError) -> DeviceProfile {
        let chosen: String
        let data: Data
        if let path {
            chosen = path
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw ProfileError(path: path, message: "cannot be read; check the path and its permissions")
            }
            data = contents
        } else if let variable = environment[environmentVariable], !variable.isEmpty {
            chosen = "\(variable) (from \(environmentVariable))"
            guard let contents = FileManager.default.contents(atPath: variable) else {
                throw ProfileError(
                    path: chosen,
                    message: "cannot be read; check the path and its permissions, or unset \(environmentVariable) "
                        + "to use the bundled profile"
                )
            }
            data = contents
        } else if let found = defaultCandidates().first(where: { FileManager.default.isReadableFile(atPath: $0) }),
            let contents = FileManager.default.contents(atPath: found)
        {
            chosen = found
            data = contents
        } else {
            chosen = builtInName
            data = Data(BundledFiles.profile.utf8)
        }
        let profile: DeviceProfile
        do {
            profile = try JSONDecoder().decode(DeviceProfile.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw ProfileError(path: chosen, message: "missing field \(pathText(ctx.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ProfileError(
                path: chosen,
                message: "wrong type at \(pathText(ctx.codingPath)): \(ctx.debugDescription)"
            )
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw ProfileError(path: chosen, message: "null at \(pathText(ctx.codingPath))")
        } catch let DecodingError.dataCorrupted(ctx) {
            let detail = (ctx.underlyingError as NSError?)?.userInfo["NSDebugDescription"] as? String
            throw ProfileError(
                path: chosen,
                message: "not valid JSON: \(detail ?? ctx.debugDescription) at \(pathText(ctx.codingPath))"
            )
        } catch {
            throw ProfileError(path: chosen, message: "not a device profile: \(error)")
        }
        let problems = profile.problems
        guard problems.isEmpty else { throw ProfileError(path: chosen, message: problems.joined(separator: "; ")) }
        return profile
    }

    private static func pathText(_ path: [any CodingKey]) -> String {
        path.isEmpty
            ? "the top level" : path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
