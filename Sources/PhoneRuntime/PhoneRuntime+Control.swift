import Flash
import Foundation
import PhoneCore

/// What a running phone reports about itself (the control API's `GET /status`).
public struct PhoneStatus: Sendable {
    /// `off`, `provisioning-<file>`, `idle`, or `stopped`.
    public var state: String
    public var identity: Identity
    public var bootCount: Int
    /// The phone's clock now.
    public var now: PhoneTime
    /// The last finished provisioning cycle.
    public var lastCycle: CycleReport?
    /// The last outcome of each file, as kept in flash.
    public var files: [FileKind: FileStatus]
    public var timers: [TimerKind: PhoneTime]
    /// Whether a file key is stored (never the key).
    public var keyPresent: Bool
    public var rootCertificateSlots: [Int]

    /// The timer that fires next.
    public var nextTimer: (kind: TimerKind, at: PhoneTime)? {
        timers.min { $0.value < $1.value }.map { ($0.key, $0.value) }
    }
}

/// Why a control request was refused.
public struct ControlError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case unknownParameter = "unknown_parameter"
        case readOnly = "read_only"
        case invalidValue = "invalid_value"
        case flash, stopped
    }
    public var kind: Kind
    public var message: String
    public var description: String { message }
}

extension PhoneRuntime {
    /// The phone's state, identity, last outcome per file and timers.
    public func status() -> PhoneStatus {
        let state: String
        switch machine.phase {
        case .off: state = "off"
        case .idle: state = "idle"
        case .provisioning(let k): state = "provisioning-\(k.rawValue)"
        }
        return PhoneStatus(
            state: isStopped ? "stopped" : state,
            identity: machine.flash.identity,
            bootCount: machine.flash.bootCount,
            now: clockNow(),
            lastCycle: machine.lastReport,
            files: machine.flash.fileStatus,
            timers: machine.timers,
            keyPresent: machine.flash.fileKey != nil,
            rootCertificateSlots: machine.flash.rootCertificates.keys.sorted()
        )
    }

    /// Every effective parameter with its source (secrets flagged, not masked: the caller masks).
    public func effectiveConfig() -> [EffectiveValue] {
        ConfigView.effective(profile: machine.profile.profile, snapshot: machine.flash)
    }

    /// The flash event log, oldest first (the last `limit` entries when given).
    public func events(limit: Int? = nil) throws(ControlError) -> [LogEntry] {
        do {
            return try flashStore.events(boot: nil, limit: limit)
        } catch {
            throw ControlError(kind: .flash, message: "\(error)")
        }
    }

    /// A local edit, refused like the phone's web UI refuses it.
    public func setParameter(_ name: String, value: String) throws(ControlError) {
        if let refusal = localEdit(name: name, value: value) {
            let kind: ControlError.Kind
            switch refusal.kind {
            case .unknownParameter: kind = .unknownParameter
            case .readOnly: kind = .readOnly
            case .invalidValue: kind = .invalidValue
            }
            throw ControlError(kind: kind, message: refusal.message)
        }
    }

    /// A power cycle: memory and timers are lost, flash is reloaded, and the boot-time provisioning runs again.
    @discardableResult
    public func reboot() async -> CycleReport? {
        guard !isStopped else { return nil }
        await waitIdle()  // a download in flight belongs to the old power-on: let it land first
        do {
            let snapshot = try flashStore.load()
            replaceMachine(PhoneMachine(profile: machine.profile, flash: snapshot, discovery: machine.discovery))
        } catch {
            return nil
        }
        return await powerOn()
    }

    /// Clears flash but the identity (spec §9), then reboots.
    @discardableResult
    public func factoryReset() async throws(ControlError) -> CycleReport? {
        guard !isStopped else { throw ControlError(kind: .stopped, message: "the phone is stopped") }
        await waitIdle()
        do {
            try flashStore.factoryReset(
                event: LogEntry(
                    at: clockNow(),
                    boot: machine.flash.bootCount,
                    level: .warning,
                    kind: "factory-reset",
                    message: "factory reset: saved files, key, local edits, timers and events cleared"
                )
            )
        } catch {
            throw ControlError(kind: .flash, message: "\(error)")
        }
        return await reboot()
    }
}
