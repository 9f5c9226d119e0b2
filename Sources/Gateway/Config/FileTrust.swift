import Glibc

/// The files the gateway's security rests on (gateway.conf, the keys file, `*_FILE` secrets, the
/// TLS private key, the CA files trusted for upstreams and identity providers) must be
/// changeable by no one but the gateway's user and root: whoever can write one of them can route
/// around the bearer check, mint tokens or read what they protect.
/// As OpenSSH's StrictModes, the file and the folder holding it are checked: a file writable by
/// group or others, or owned by another user, is refused; so is a folder in which another user
/// could replace it (writable by group or others without the sticky bit, or owned by another user).
/// Group write is allowed only for a user-private group (the owner's own primary group, named as
/// the owner, with no other members), which a umask of 002 gives every file. Reading is not
/// checked: container runtimes mount secrets readable by all (mode 0444/0644).
enum FileTrust {
    /// Why `path` cannot be trusted, as a sentence naming it and the fix; nil when it can.
    /// A file that does not exist is not this check's concern (the reader reports it).
    static func problem(_ path: String, euid: uid_t = geteuid()) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        if let problem = ownerOrModeProblem(st, euid: euid, isFolder: false) {
            return "\(path) \(problem)"
        }
        let folder = parent(of: path)
        var dir = stat()
        guard stat(folder, &dir) == 0 else { return nil }
        if let problem = ownerOrModeProblem(dir, euid: euid, isFolder: true) {
            return "\(path) is in \(folder), which \(problem)"
        }
        return nil
    }

    private static func ownerOrModeProblem(_ st: stat, euid: uid_t, isFolder: Bool) -> String? {
        let mode = st.st_mode & 0o7777
        if st.st_uid != euid && st.st_uid != 0 {
            return "is owned by uid \(st.st_uid), not by the gateway's user (uid \(euid)) or root"
        }
        let writableByOthers = mode & 0o002 != 0 || (mode & 0o020 != 0 && !isPrivateGroup(st.st_gid, of: st.st_uid))
        if writableByOthers && !(isFolder && mode & 0o1000 != 0) {
            return "is writable by group or others (mode \(octal(mode))); run chmod go-w on it"
        }
        return nil
    }

    /// The group is `uid`'s own: its primary group, with the user's name and no listed members.
    static func isPrivateGroup(_ gid: gid_t, of uid: uid_t) -> Bool {
        var scratch = [CChar](repeating: 0, count: 16_384)
        return scratch.withUnsafeMutableBufferPointer { buf -> Bool in
            var pw = passwd(), group = Glibc.group()
            var pwResult: UnsafeMutablePointer<passwd>?, grResult: UnsafeMutablePointer<Glibc.group>?
            let half = buf.count / 2
            guard getpwuid_r(uid, &pw, buf.baseAddress!, half, &pwResult) == 0, pwResult != nil, pw.pw_gid == gid,
                  getgrgid_r(gid, &group, buf.baseAddress! + half, half, &grResult) == 0, grResult != nil,
                  let userName = pw.pw_name, let groupName = group.gr_name, strcmp(userName, groupName) == 0 else { return false }
            return group.gr_mem == nil || group.gr_mem.pointee == nil
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
