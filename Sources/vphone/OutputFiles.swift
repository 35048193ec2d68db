import ArgumentParser
import Foundation

// Files the commands write (exports, fleet reports): checked before any work, written whole or not at all.

/// Refuses, before any work is done, an output that could not be written at the end (a fleet run is lost when its
/// report cannot be saved): a directory, a directory that does not exist or takes no new files, a device or pipe
/// that is not writable.
func checkOutputPath(_ path: String, option: String) throws {
    if isStream(path) {
        guard access(path, W_OK) == 0 else {
            throw ValidationError("\(option) \(path): cannot write it (\(String(cString: strerror(errno))))")
        }
        return
    }
    var info = stat()
    if stat(path, &info) == 0 {
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            throw ValidationError("\(option) \(path) is a directory: give the path of a file to write")
        case S_IFREG:
            break
        default:
            // A device, pipe or terminal (/dev/stdout) is written in place.
            guard access(path, W_OK) == 0 else {
                throw ValidationError("\(option) \(path): cannot write it (\(String(cString: strerror(errno))))")
            }
            return
        }
    }
    let directory = (resolvedPath(path) as NSString).deletingLastPathComponent
    let parent = directory.isEmpty ? "." : directory
    var parentInfo = stat()
    guard stat(parent, &parentInfo) == 0, parentInfo.st_mode & S_IFMT == S_IFDIR else {
        throw ValidationError(
            "\(option) \(path): the directory \(parent) does not exist; create it, or choose another path"
        )
    }
    // The file is written as a temporary beside it and renamed over it: the directory must take new files.
    guard access(parent, W_OK | X_OK) == 0 else {
        throw ValidationError(
            "\(option) \(path): cannot create files in \(parent) (\(String(cString: strerror(errno)))); "
                + "choose a writable directory"
        )
    }
}

/// Refuses an empty path (`vphone flash info ''`, often an unset shell variable) as a bad command line, before it is
/// taken for a file that does not exist.
func requireNonEmptyPaths(_ paths: [(name: String, path: String)]) throws {
    for (name, path) in paths where path.isEmpty {
        throw ValidationError("\(name) \"\": an empty path; give a file's path (an unset shell variable?)")
    }
}

/// Refuses two outputs given the same path (the second would silently replace the first).
func checkDistinctOutputs(_ outputs: [(option: String, path: String?)]) throws {
    var seen: [String: String] = [:]
    for (option, path) in outputs {
        guard let path else { continue }
        let key = fileKey(path)
        if let other = seen[key] {
            throw ValidationError("\(other) and \(option) both write \(path): give each its own file")
        }
        seen[key] = option
    }
}

/// Refuses an input file given twice (`what` names the kind, "report") and an output that is one of the inputs
/// (writing it would replace an input): the same file however it is spelt, through a symbolic or hard link too.
func checkInputsAndOutputs(_ inputs: [String], what: String, outputs: [(option: String, path: String?)]) throws {
    var seen: [String: String] = [:]
    for input in inputs {
        guard let key = regularFileKey(input) else { continue }  // missing: reported when read
        if let other = seen[key] {
            let spelt = other == input ? "" : " (as \(other) and \(input))"
            throw ValidationError(
                "the \(what) \(other) is given twice\(spelt): give each \(what) once (it would be counted twice)"
            )
        }
        seen[key] = input
    }
    for case let (option, path?) in outputs {
        guard let key = regularFileKey(path), let input = seen[key] else { continue }
        throw ValidationError(
            "\(option) \(path) is the \(what) \(input), which it would replace: write to another file"
        )
    }
}

/// What makes two paths the same file: its device and inode when it exists (links to it included), else the
/// absolute path with its symbolic links resolved.
private func fileKey(_ path: String) -> String {
    regularFileKey(path) ?? URL(fileURLWithPath: resolvedPath(path)).standardizedFileURL.path
}

/// The device and inode of an existing regular file; nil for anything else (a device such as /dev/stdout is
/// read or written in place, not replaced).
private func regularFileKey(_ path: String) -> String? {
    var info = stat()
    guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
    return "\(info.st_dev):\(info.st_ino)"
}

/// Writes `bytes` to `path` through a temporary file renamed over it, so a reader never sees half an export (or
/// half a report); mode 0600 when it holds secrets. Refuses an existing file unless `replace`. A symbolic link
/// stays and the file it names is replaced; a device, pipe or terminal (`/dev/stdout`) is written in place.
func writeFile(_ path: String, _ bytes: [UInt8], private isPrivate: Bool, replace: Bool) throws {
    if !replace, FileManager.default.fileExists(atPath: path) {
        fail("\(path) already exists: pass --force to replace it, or choose another file")
        throw Exit.data
    }
    var info = stat()
    if isStream(path) || (stat(path, &info) == 0 && info.st_mode & S_IFMT != S_IFREG) {
        // Appended to, never truncated or replaced: /dev/stdout redirected to a log (`>> runs.log`) is that log.
        // What was printed before comes first, and what comes after starts on a line of its own.
        fflush(nil)  // every C stream, stdout among them (print buffers when it is not a terminal)
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        let ok = fd >= 0 && writeAll(fd, bytes.last == UInt8(ascii: "\n") || bytes.isEmpty ? bytes : bytes + [10])
        let error = errno
        if fd >= 0 { _ = close(fd) }
        guard ok else {
            fail("cannot write \(path): \(String(cString: strerror(error)))")
            throw Exit.data
        }
        return
    }
    let target = resolvedPath(path)
    let temporary = target + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, isPrivate ? 0o600 : 0o644)
    guard fd >= 0 else {
        fail("cannot create \(temporary): \(String(cString: strerror(errno)))")
        throw Exit.data
    }
    var ok = (!isPrivate || fchmod(fd, 0o600) == 0) && writeAll(fd, bytes)
    ok = ok && fsync(fd) == 0
    let error = errno
    _ = close(fd)
    guard ok, rename(temporary, target) == 0 else {
        let message = String(cString: strerror(ok ? errno : error))
        _ = unlink(temporary)
        fail("cannot write \(path): \(message)")
        throw Exit.data
    }
}

/// Whether `path` names one of this process's open files (`/dev/stdout`, `/dev/stderr`, `/dev/fd/N`,
/// `/proc/self/fd/N`): whatever it resolves to, possibly a regular file, it is a stream to append to.
private func isStream(_ path: String) -> Bool {
    ["/dev/stdout", "/dev/stderr"].contains(path) || path.hasPrefix("/dev/fd/") || path.hasPrefix("/proc/self/fd/")
}

/// Writes every byte, through short writes and interrupted calls; false (with errno set) on an error.
private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { buffer in
        guard let base = buffer.baseAddress else { return true }
        var offset = 0
        while offset < buffer.count {
            let written = write(fd, base + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}

/// The path with its symbolic links resolved when it names an existing file; otherwise the path as given.
private func resolvedPath(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
}
