//! cgroup v2 device filtering: device rules compiled into an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE`, the v2 stand-in for v1's `devices.allow`/`devices.deny`.
//!
//! Invariant: pure, and the program decides exactly as the rules read: the rules are looked
//! at last first, and the first that matches decides (an allow rule matches when its type,
//! major and minor match and the access asked for is a subset of its own; a deny rule when
//! its type, major and minor match and the access asked for shares a bit with its own); when
//! none matches, access is denied. The kernel asks with access bits out of
//! [`ACC_MKNOD`] | [`ACC_READ`] | [`ACC_WRITE`] only (possibly none, for an exec permission
//! check), so the program is exact on those.
//!
//! The program's shape follows runc's `libcontainer/cgroups/devices/devicefilter.go`: a
//! prologue loads the context into registers, then one block per rule, each a run of
//! "if this field differs, go to the next block" and a `return`. It differs from runc's on
//! purpose in two places: numbers of 2^31 and more are compared as unsigned 32-bit values
//! (a 64-bit compare with the sign-extended immediate would never match them), and deny
//! rules match on overlapping access, as v1 denies `rw` when only `w` is denied.
//!
//! Left out, since they change no verdict: rules with a number no device has (negative or
//! past `u32::MAX`), deny rules without access letters, deny rules that only come before
//! every allow rule (the default denies anyway), and every rule before an allow of all
//! access to all devices.

use std::fmt;

use crate::plan::DeviceRule;

/// `BPF_DEVCG_DEV_BLOCK`: the device type of a block device in the context.
pub const DEV_BLOCK: u32 = 1;
/// `BPF_DEVCG_DEV_CHAR`: the device type of a character device in the context.
pub const DEV_CHAR: u32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`: the access bit of `mknod` (letter `m`).
pub const ACC_MKNOD: u32 = 1;
/// `BPF_DEVCG_ACC_READ`: the access bit of reading (letter `r`).
pub const ACC_READ: u32 = 2;
/// `BPF_DEVCG_ACC_WRITE`: the access bit of writing (letter `w`).
pub const ACC_WRITE: u32 = 4;
/// Every access bit.
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Instruction classes (`BPF_CLASS`).
mod class {
    pub(super) const LDX: u8 = 0x01;
    pub(super) const ALU: u8 = 0x04;
    pub(super) const JMP: u8 = 0x05;
    pub(super) const ALU64: u8 = 0x07;
}
/// `BPF_MEM | BPF_W`: a 32-bit load from memory.
const MEM_W: u8 = 0x60;
/// Operand source: the immediate (`BPF_K`) or the source register (`BPF_X`).
const K: u8 = 0x00;
const X: u8 = 0x08;
/// ALU operations (`BPF_OP`).
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
/// Jump operations (`BPF_OP`).
const JA: u8 = 0x00;
const JSET: u8 = 0x40;
const JNE: u8 = 0x50;
const EXIT: u8 = 0x90;

/// Registers: r0 holds the verdict, r1 the context pointer on entry (later a scratch
/// register), r2..r5 the fields the prologue loads.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// One eBPF instruction (`struct bpf_insn`), its fields unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    /// The opcode: class, operation and operand source.
    pub code: u8,
    /// The destination register (0..=10).
    pub dst: u8,
    /// The source register (0..=10).
    pub src: u8,
    /// The signed offset: of a memory access, or of a jump (from the next instruction).
    pub off: i16,
    /// The signed 32-bit immediate.
    pub imm: i32,
}

impl Insn {
    /// The kernel's 8-byte encoding (`struct bpf_insn` in this machine's byte order).
    pub fn to_bytes(self) -> [u8; 8] {
        // `__u8 dst_reg:4, src_reg:4`: bit fields fill a byte from its low bits on
        // little-endian targets and from its high bits on big-endian ones.
        let regs = if cfg!(target_endian = "little") {
            (self.dst & 0x0f) | (self.src << 4)
        } else {
            (self.dst << 4) | (self.src & 0x0f)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }

    /// `dst = *(u32 *)(src + off)`.
    fn load_word(dst: u8, src: u8, off: i16) -> Insn {
        Insn {
            code: class::LDX | MEM_W,
            dst,
            src,
            off,
            imm: 0,
        }
    }

    /// A 32-bit ALU operation with an immediate (`wdst op= imm`); the upper half of the
    /// register becomes zero.
    fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn {
            code: class::ALU | op | K,
            dst,
            src: 0,
            off: 0,
            imm,
        }
    }

    /// `rdst = imm` (64-bit, sign-extending).
    fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn {
            code: class::ALU64 | MOV | K,
            dst,
            src: 0,
            off: 0,
            imm,
        }
    }

    /// A conditional jump comparing `dst` with an immediate (sign-extended to 64 bits).
    fn jump_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        Insn {
            code: class::JMP | op | K,
            dst,
            src: 0,
            off,
            imm,
        }
    }

    /// A conditional jump comparing `dst` with `src`.
    fn jump_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn {
            code: class::JMP | op | X,
            dst,
            src,
            off,
            imm: 0,
        }
    }

    /// `goto pc+off`.
    fn goto(off: i16) -> Insn {
        Insn::jump_imm(JA, 0, 0, off)
    }

    /// `exit`: return r0.
    fn exit() -> Insn {
        Insn {
            code: class::JMP | EXIT,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        }
    }

    /// Whether this is a jump with an offset (conditional or `goto`), not `exit`.
    fn is_jump(self) -> bool {
        self.code & 0x07 == class::JMP && self.code & 0xf0 != EXIT
    }

    /// Writes the instruction in the kernel verifier's notation; a jump's target is
    /// `pc+off`, or the absolute index when `pc` is known.
    fn write(self, f: &mut fmt::Formatter<'_>, pc: Option<usize>) -> fmt::Result {
        let op = self.code & 0xf0;
        let x = self.code & X == X;
        match self.code & 0x07 {
            class::LDX if self.code == class::LDX | MEM_W => {
                write!(f, "r{} = *(u32 *)(r{} {:+})", self.dst, self.src, self.off)
            }
            c @ (class::ALU | class::ALU64) => {
                let reg = if c == class::ALU { 'w' } else { 'r' };
                let sym = match op {
                    AND => "&=",
                    RSH => ">>=",
                    MOV => "=",
                    _ => return write!(f, "(alu {:#04x})", self.code),
                };
                write!(f, "{reg}{} {sym} ", self.dst)?;
                if x {
                    write!(f, "{reg}{}", self.src)
                } else if op == AND {
                    write!(f, "{:#x}", self.imm)
                } else {
                    write!(f, "{}", self.imm)
                }
            }
            class::JMP => {
                if op == EXIT {
                    return f.write_str("exit");
                }
                if op != JA {
                    let sym = match op {
                        JNE => "!=",
                        JSET => "&",
                        _ => return write!(f, "(jmp {:#04x})", self.code),
                    };
                    write!(f, "if r{} {sym} ", self.dst)?;
                    if x {
                        write!(f, "r{} ", self.src)?;
                    } else if op == JSET {
                        write!(f, "{:#x} ", self.imm)?;
                    } else {
                        write!(f, "{} ", self.imm)?;
                    }
                }
                let target = pc.and_then(|pc| {
                    let t = i64::try_from(pc).ok()? + 1 + i64::from(self.off);
                    usize::try_from(t).ok()
                });
                match target {
                    Some(t) => write!(f, "goto {t}"),
                    None => write!(f, "goto pc{:+}", self.off),
                }
            }
            _ => write!(f, "(op {:#04x})", self.code),
        }
    }
}

/// The kernel verifier's notation (`r2 = *(u32 *)(r1 +0)`, `if r2 != 2 goto pc+4`).
impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, None)
    }
}

/// A compiled device filter: its instructions, and where each rule's block starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceProgram {
    /// The instructions, ready for `BPF_PROG_LOAD` (see [`DeviceProgram::to_bytes`]).
    pub insns: Vec<Insn>,
    /// Comments for the disassembly: the index of an instruction and what starts there.
    pub notes: Vec<(usize, String)>,
}

impl DeviceProgram {
    /// The instructions in the kernel's encoding, 8 bytes each.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.insns.iter().flat_map(|i| i.to_bytes()).collect()
    }
}

/// The annotated disassembly: one instruction a line, jump targets as absolute indices,
/// each rule's block headed by a `;` comment naming it.
impl fmt::Display for DeviceProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct At(Insn, usize);
        impl fmt::Display for At {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, Some(self.1))
            }
        }
        for (pc, insn) in self.insns.iter().enumerate() {
            for (_, note) in self.notes.iter().filter(|(at, _)| *at == pc) {
                writeln!(f, "; {note}")?;
            }
            writeln!(f, "{pc:4}: {}", At(*insn, pc))?;
        }
        Ok(())
    }
}

/// Why device rules cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// The rule's type is none of `a`, `c`, `b`.
    #[error("device rule {index}: unknown type {kind:?} (not a, c or b)")]
    Kind {
        /// The rule's index.
        index: usize,
        /// Its type.
        kind: char,
    },
    /// The rule's access has a letter other than `r`, `w`, `m`.
    #[error("device rule {index}: access {access:?} has a letter other than r, w, m")]
    Access {
        /// The rule's index.
        index: usize,
        /// Its access.
        access: String,
    },
}

/// A rule in the program's terms; `None` matches anything.
#[derive(Clone, Copy, Debug)]
struct Rule {
    index: usize,
    allow: bool,
    kind: Option<u32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: u32,
}

impl Rule {
    /// Checks `rule`; `Ok(None)` when it can never match a device access.
    fn new(index: usize, rule: &DeviceRule) -> Result<Option<Rule>, BpfError> {
        let kind = match rule.kind {
            'a' => None,
            'c' => Some(DEV_CHAR),
            'b' => Some(DEV_BLOCK),
            kind => return Err(BpfError::Kind { index, kind }),
        };
        let mut access = 0;
        for c in rule.access.chars() {
            access |= match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => {
                    return Err(BpfError::Access {
                        index,
                        access: rule.access.clone(),
                    });
                }
            };
        }
        // The kernel's numbers are u32: another number is no device's.
        let number = |n: Option<i64>| match n {
            None => Some(None),
            Some(n) => u32::try_from(n).ok().map(Some),
        };
        let (Some(major), Some(minor)) = (number(rule.major), number(rule.minor)) else {
            return Ok(None);
        };
        if !rule.allow && access == 0 {
            // Denies no access at all.
            return Ok(None);
        }
        Ok(Some(Rule {
            index,
            allow: rule.allow,
            kind,
            major,
            minor,
            access,
        }))
    }

    /// Whether the rule allows every access to every device.
    fn allows_all(&self) -> bool {
        self.allow
            && self.kind.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

/// The block of one rule: tests that jump to `end` (the next block) when the rule does not
/// match, then the verdict. Jump offsets are relative to the block's end, fixed by `close`.
#[derive(Default)]
struct Block {
    insns: Vec<Insn>,
    /// Indices of the jumps whose target is the block's end.
    to_end: Vec<usize>,
}

impl Block {
    fn jump_to_end(&mut self, insn: Insn) {
        self.to_end.push(self.insns.len());
        self.insns.push(insn);
    }

    /// `if reg != value goto end`, comparing as unsigned 32-bit numbers.
    fn skip_unless_eq(&mut self, reg: u8, value: u32) {
        match i32::try_from(value) {
            Ok(imm) => self.jump_to_end(Insn::jump_imm(JNE, reg, imm, 0)),
            Err(_) => {
                // The immediate of a 64-bit compare is sign-extended; a 32-bit move
                // zero-extends, so the comparison is with the u32 value itself.
                self.insns.push(Insn::alu32_imm(
                    MOV,
                    R1,
                    i32::from_ne_bytes(value.to_ne_bytes()),
                ));
                self.jump_to_end(Insn::jump_reg(JNE, reg, R1, 0));
            }
        }
    }

    /// Sets the offsets of the jumps to the end.
    fn close(mut self) -> Vec<Insn> {
        let len = self.insns.len();
        for at in self.to_end {
            self.insns[at].off =
                i16::try_from(len - at - 1).expect("a block has at most 9 instructions");
        }
        self.insns
    }
}

/// The block of `rule`.
fn rule_block(rule: &Rule) -> Block {
    let mut b = Block::default();
    if let Some(kind) = rule.kind {
        b.skip_unless_eq(R_TYPE, kind);
    }
    if let Some(major) = rule.major {
        b.skip_unless_eq(R_MAJOR, major);
    }
    if let Some(minor) = rule.minor {
        b.skip_unless_eq(R_MINOR, minor);
    }
    let mask = |bits: u32| i32::try_from(bits).expect("access bits fit in 3 bits");
    if rule.allow {
        // Asked-for access must be a subset of the rule's: no bit outside it.
        let outside = !rule.access & ACC_ALL;
        if outside != 0 {
            b.jump_to_end(Insn::jump_imm(JSET, R_ACCESS, mask(outside), 0));
        }
        b.insns.push(Insn::mov64_imm(R0, 1));
    } else {
        // Asked-for access must share a bit with the rule's.
        b.insns
            .push(Insn::jump_imm(JSET, R_ACCESS, mask(rule.access), 1));
        b.jump_to_end(Insn::goto(0));
        b.insns.push(Insn::mov64_imm(R0, 0));
    }
    b.insns.push(Insn::exit());
    b
}

/// Compiles device rules (later ones winning, default deny) into a
/// `BPF_PROG_TYPE_CGROUP_DEVICE` program that returns 1 to allow, 0 to deny.
pub fn compile_device_filter(rules: &[DeviceRule]) -> Result<DeviceProgram, BpfError> {
    let mut checked = Vec::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        checked.extend(Rule::new(index, rule)?);
    }
    // Rules are looked at last first. Nothing before an allow-all is ever looked at, and
    // deny rules before the first allow rule decide as the default does.
    if let Some(all) = checked.iter().rposition(Rule::allows_all) {
        checked.drain(..all);
    }
    let first_allow = checked
        .iter()
        .position(|r| r.allow)
        .unwrap_or(checked.len());
    checked.drain(..first_allow);

    let mut insns = Vec::new();
    let mut notes = Vec::new();
    let mut decided = false;
    for rule in checked.iter().rev() {
        notes.push((
            insns.len(),
            format!("rule {}: {}", rule.index, rules[rule.index]),
        ));
        insns.extend(rule_block(rule).close());
        if rule.allows_all() {
            decided = true;
            break;
        }
    }
    if !decided {
        notes.push((insns.len(), "no rule matched: deny".to_owned()));
        insns.push(Insn::mov64_imm(R0, 0));
        insns.push(Insn::exit());
    }
    if insns.iter().any(|i| i.is_jump()) {
        // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }, where
        // access_type is (access << 16) | type.
        let prologue = [
            Insn::load_word(R_TYPE, R1, 0),
            Insn::alu32_imm(AND, R_TYPE, 0xffff),
            Insn::load_word(R_ACCESS, R1, 0),
            Insn::alu32_imm(RSH, R_ACCESS, 16),
            Insn::load_word(R_MAJOR, R1, 4),
            Insn::load_word(R_MINOR, R1, 8),
        ];
        for (at, _) in &mut notes {
            *at += prologue.len();
        }
        notes.insert(
            0,
            (
                0,
                "r2 = type, r3 = access, r4 = major, r5 = minor".to_owned(),
            ),
        );
        insns.splice(0..0, prologue);
    }
    Ok(DeviceProgram { insns, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        kind: char,
        major: Option<i64>,
        minor: Option<i64>,
        a: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: a.to_owned(),
        }
    }

    /// The rules the planner gives a container with runc's default config: the config's
    /// deny-all, then runc's `AllowedDevices`.
    fn runc_defaults() -> Vec<DeviceRule> {
        let mut rules = vec![
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', None, None, "m"),
            rule(true, 'b', None, None, "m"),
        ];
        for (major, minor) in [(1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9)] {
            rules.push(rule(true, 'c', Some(major), Some(minor), "rwm"));
        }
        rules.push(rule(true, 'c', Some(136), None, "rwm"));
        rules.push(rule(true, 'c', Some(5), Some(2), "rwm"));
        rules
    }

    /// The rules as the module docs state them, read directly.
    fn reference(rules: &[DeviceRule], kind: u32, major: u32, minor: u32, access: u32) -> bool {
        let bits = |a: &str| {
            a.chars()
                .map(|c| match c {
                    'm' => ACC_MKNOD,
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    _ => panic!("bad access {a:?}"),
                })
                .fold(0, |x, y| x | y)
        };
        for r in rules.iter().rev() {
            let kind_matches = match r.kind {
                'a' => true,
                'c' => kind == DEV_CHAR,
                'b' => kind == DEV_BLOCK,
                k => panic!("bad kind {k:?}"),
            };
            let number_matches = |n: Option<i64>, v: u32| n.is_none_or(|n| n == i64::from(v));
            if !(kind_matches && number_matches(r.major, major) && number_matches(r.minor, minor)) {
                continue;
            }
            let own = bits(&r.access);
            if r.allow && access & !own == 0 {
                return true;
            }
            if !r.allow && access & own != 0 {
                return false;
            }
        }
        false
    }

    const CTX: u64 = 0x7f00_0000_0000;

    /// What the kernel's verifier would refuse, checked without running: a register out of
    /// range, a jump out of the program or backwards, an instruction no path reaches, an
    /// end that falls off the program, an opcode this compiler never emits.
    fn check_static(p: &[Insn]) {
        assert!(!p.is_empty() && p.len() <= 4096, "length {}", p.len());
        let mut reached = vec![false; p.len()];
        reached[0] = true;
        for (pc, i) in p.iter().enumerate() {
            assert!(i.dst <= 10 && i.src <= 10, "{pc}: {i}");
            assert!(reached[pc], "{pc}: unreachable\n{}", listing(p));
            let known = [
                class::LDX | MEM_W,
                class::ALU | AND | K,
                class::ALU | RSH | K,
                class::ALU | MOV | K,
                class::ALU64 | MOV | K,
                class::JMP | JA,
                class::JMP | JNE | K,
                class::JMP | JNE | X,
                class::JMP | JSET | K,
                class::JMP | EXIT,
            ];
            assert!(known.contains(&i.code), "{pc}: opcode {:#04x}", i.code);
            if i.code == class::JMP | EXIT {
                continue;
            }
            if i.is_jump() {
                assert!(i.off >= 0, "{pc}: backward jump");
                let target = pc + 1 + usize::try_from(i.off).unwrap();
                assert!(target < p.len(), "{pc}: jump past the end");
                reached[target] = true;
                if i.code == class::JMP | JA {
                    continue;
                }
            }
            assert!(pc + 1 < p.len(), "{pc}: falls off the end");
            reached[pc + 1] = true;
        }
    }

    fn listing(p: &[Insn]) -> String {
        DeviceProgram {
            insns: p.to_vec(),
            notes: Vec::new(),
        }
        .to_string()
    }

    /// Runs the program as the kernel would on one context; panics on anything the
    /// verifier would refuse at run time (an uninitialised register read, a load outside
    /// the context, no verdict in r0).
    fn run(p: &[Insn], kind: u32, major: u32, minor: u32, access: u32) -> u64 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut reg = [0u64; 11];
        let mut init = [false; 11];
        reg[1] = CTX;
        init[1] = true;
        let mut pc = 0usize;
        for _ in 0..=p.len() {
            let i = p[pc];
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            let here = pc;
            let read = |reg: &[u64; 11], init: &[bool; 11], r: usize| {
                assert!(init[r], "{here}: r{r} read before written\n{}", listing(p));
                reg[r]
            };
            let imm64 = i64::from(i.imm) as u64; // sign-extended, as the kernel does
            let imm32 = u64::from(i.imm as u32);
            pc += 1;
            match i.code {
                c if c == class::LDX | MEM_W => {
                    let addr = read(&reg, &init, s).wrapping_add(i.off as u64);
                    let at = addr.wrapping_sub(CTX);
                    assert!(at < 12 && at % 4 == 0, "load outside the context: {at:#x}");
                    reg[d] = u64::from(ctx[usize::try_from(at / 4).unwrap()]);
                    init[d] = true;
                }
                c if c == class::ALU | AND | K => {
                    reg[d] = (read(&reg, &init, d) & imm32) & 0xffff_ffff
                }
                c if c == class::ALU | RSH | K => {
                    reg[d] = (read(&reg, &init, d) & 0xffff_ffff) >> (i.imm as u32 & 31);
                }
                c if c == class::ALU | MOV | K => {
                    reg[d] = imm32;
                    init[d] = true;
                }
                c if c == class::ALU64 | MOV | K => {
                    reg[d] = imm64;
                    init[d] = true;
                }
                c if c == class::JMP | JA => pc += usize::try_from(i.off).unwrap(),
                c if c == class::JMP | JNE | K => {
                    if read(&reg, &init, d) != imm64 {
                        pc += usize::try_from(i.off).unwrap();
                    }
                }
                c if c == class::JMP | JNE | X => {
                    if read(&reg, &init, d) != read(&reg, &init, s) {
                        pc += usize::try_from(i.off).unwrap();
                    }
                }
                c if c == class::JMP | JSET | K => {
                    if read(&reg, &init, d) & imm64 != 0 {
                        pc += usize::try_from(i.off).unwrap();
                    }
                }
                c if c == class::JMP | EXIT => return read(&reg, &init, 0),
                c => panic!("opcode {c:#04x}"),
            }
        }
        panic!("no exit after {} steps", p.len() + 1)
    }

    /// Numbers worth asking about for `rules`: theirs, their neighbours, and the ends of
    /// the u32 range.
    fn numbers(rules: &[DeviceRule]) -> Vec<u32> {
        let mut v = vec![0, 1, 2, 0x7fff_ffff, 0x8000_0000, u32::MAX];
        for r in rules {
            for n in [r.major, r.minor].into_iter().flatten() {
                for m in [n - 1, n, n + 1] {
                    v.extend(u32::try_from(m).ok());
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Checks the compiled program against [`reference`] on every combination of type,
    /// number and access worth asking about; returns how many it checked.
    fn agrees(rules: &[DeviceRule]) -> Result<usize, String> {
        let p = compile_device_filter(rules).map_err(|e| e.to_string())?;
        check_static(&p.insns);
        let nums = numbers(rules);
        let mut n = 0;
        for kind in 0..=3 {
            for &major in &nums {
                for &minor in &nums {
                    for access in 0..=ACC_ALL {
                        let want = reference(rules, kind, major, minor, access);
                        let got = run(&p.insns, kind, major, minor, access);
                        if got != u64::from(want) {
                            return Err(format!(
                                "type {kind} {major}:{minor} access {access}: program says \
                                 {got}, rules say {want}\n{p}"
                            ));
                        }
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    #[test]
    fn runc_defaults_agree_with_the_rules() {
        let rules = runc_defaults();
        assert!(agrees(&rules).unwrap() > 1000);
        let p = compile_device_filter(&rules).unwrap();
        let allowed = |k, ma, mi, a| run(&p.insns, k, ma, mi, a) == 1;
        assert!(allowed(DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE)); // /dev/null
        assert!(allowed(DEV_CHAR, 136, 7, ACC_READ)); // /dev/pts/7
        assert!(allowed(DEV_BLOCK, 8, 0, ACC_MKNOD)); // mknod sda
        assert!(!allowed(DEV_BLOCK, 8, 0, ACC_READ)); // read sda
        assert!(!allowed(DEV_CHAR, 1, 1, ACC_READ)); // /dev/mem
        assert!(!allowed(DEV_CHAR, 10, 200, ACC_READ)); // /dev/net/tun: not in runc 1.2+
    }

    /// The program for runc's defaults, for a reviewer to read. The config's leading
    /// deny-all is left out: the default denies anyway.
    #[test]
    fn runc_defaults_golden() {
        let p = compile_device_filter(&runc_defaults()).unwrap();
        let want = "\
; r2 = type, r3 = access, r4 = major, r5 = minor
   0: r2 = *(u32 *)(r1 +0)
   1: w2 &= 0xffff
   2: r3 = *(u32 *)(r1 +0)
   3: w3 >>= 16
   4: r4 = *(u32 *)(r1 +4)
   5: r5 = *(u32 *)(r1 +8)
; rule 10: allow c 5:2 rwm
   6: if r2 != 2 goto 11
   7: if r4 != 5 goto 11
   8: if r5 != 2 goto 11
   9: r0 = 1
  10: exit
; rule 9: allow c 136:* rwm
  11: if r2 != 2 goto 15
  12: if r4 != 136 goto 15
  13: r0 = 1
  14: exit
; rule 8: allow c 1:9 rwm
  15: if r2 != 2 goto 20
  16: if r4 != 1 goto 20
  17: if r5 != 9 goto 20
  18: r0 = 1
  19: exit
; rule 7: allow c 1:5 rwm
  20: if r2 != 2 goto 25
  21: if r4 != 1 goto 25
  22: if r5 != 5 goto 25
  23: r0 = 1
  24: exit
; rule 6: allow c 5:0 rwm
  25: if r2 != 2 goto 30
  26: if r4 != 5 goto 30
  27: if r5 != 0 goto 30
  28: r0 = 1
  29: exit
; rule 5: allow c 1:7 rwm
  30: if r2 != 2 goto 35
  31: if r4 != 1 goto 35
  32: if r5 != 7 goto 35
  33: r0 = 1
  34: exit
; rule 4: allow c 1:8 rwm
  35: if r2 != 2 goto 40
  36: if r4 != 1 goto 40
  37: if r5 != 8 goto 40
  38: r0 = 1
  39: exit
; rule 3: allow c 1:3 rwm
  40: if r2 != 2 goto 45
  41: if r4 != 1 goto 45
  42: if r5 != 3 goto 45
  43: r0 = 1
  44: exit
; rule 2: allow b *:* m
  45: if r2 != 1 goto 49
  46: if r3 & 0x6 goto 49
  47: r0 = 1
  48: exit
; rule 1: allow c *:* m
  49: if r2 != 2 goto 53
  50: if r3 & 0x6 goto 53
  51: r0 = 1
  52: exit
; no rule matched: deny
  53: r0 = 0
  54: exit
";
        assert_eq!(
            p.to_string(),
            want,
            "the program changed; if on purpose, update `want`"
        );
    }

    #[test]
    fn deny_block_and_large_numbers() {
        let rules = [
            rule(true, 'a', None, None, "rwm"),
            rule(false, 'c', Some(0x8000_0000), None, "w"),
        ];
        let p = compile_device_filter(&rules).unwrap();
        let want = "\
; r2 = type, r3 = access, r4 = major, r5 = minor
   0: r2 = *(u32 *)(r1 +0)
   1: w2 &= 0xffff
   2: r3 = *(u32 *)(r1 +0)
   3: w3 >>= 16
   4: r4 = *(u32 *)(r1 +4)
   5: r5 = *(u32 *)(r1 +8)
; rule 1: deny c 2147483648:* w
   6: if r2 != 2 goto 13
   7: w1 = -2147483648
   8: if r4 != r1 goto 13
   9: if r3 & 0x4 goto 11
  10: goto 13
  11: r0 = 0
  12: exit
; rule 0: allow a *:* rwm
  13: r0 = 1
  14: exit
";
        assert_eq!(p.to_string(), want);
        agrees(&rules).unwrap();
        assert_eq!(run(&p.insns, DEV_CHAR, 0x8000_0000, 1, ACC_WRITE), 0);
        assert_eq!(run(&p.insns, DEV_CHAR, 0x8000_0000, 1, ACC_READ), 1);
    }

    #[test]
    fn trivial_programs() {
        let deny = "; no rule matched: deny\n   0: r0 = 0\n   1: exit\n";
        for rules in [
            vec![],
            vec![rule(false, 'a', None, None, "rwm")],
            vec![rule(true, 'c', Some(-3), None, "rwm")],
            vec![rule(true, 'c', Some(1 << 32), Some(1), "rwm")],
            vec![rule(false, 'c', Some(1), Some(3), "")],
        ] {
            let p = compile_device_filter(&rules).unwrap();
            assert_eq!(p.to_string(), deny, "{rules:?}");
            agrees(&rules).unwrap();
        }
        let rules = [
            rule(true, 'c', Some(1), Some(3), "r"),
            rule(true, 'a', None, None, "mwr"),
        ];
        let p = compile_device_filter(&rules).unwrap();
        assert_eq!(
            p.to_string(),
            "; rule 1: allow a *:* mwr\n   0: r0 = 1\n   1: exit\n"
        );
        agrees(&rules).unwrap();
    }

    #[test]
    fn access_zero_and_overlap() {
        // An exec permission check asks with no access bit: allow rules match it, deny
        // rules do not.
        let rules = [
            rule(true, 'c', Some(1), None, ""),
            rule(false, 'a', None, None, "rwm"),
        ];
        let p = compile_device_filter(&rules).unwrap();
        assert_eq!(run(&p.insns, DEV_CHAR, 1, 3, 0), 1);
        assert_eq!(run(&p.insns, DEV_CHAR, 1, 3, ACC_READ), 0);
        agrees(&rules).unwrap();
        // Denying `w` denies `rw` too.
        let rules = [
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(false, 'c', Some(1), Some(3), "w"),
        ];
        let p = compile_device_filter(&rules).unwrap();
        assert_eq!(run(&p.insns, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE), 0);
        assert_eq!(run(&p.insns, DEV_CHAR, 1, 3, ACC_READ), 1);
        agrees(&rules).unwrap();
    }

    #[test]
    fn bad_rules_are_errors() {
        assert_eq!(
            compile_device_filter(&[rule(true, 'u', None, None, "r")]),
            Err(BpfError::Kind {
                index: 0,
                kind: 'u'
            })
        );
        let e = compile_device_filter(&[
            rule(true, 'c', None, None, "r"),
            rule(false, 'b', None, None, "rx"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "device rule 1: access \"rx\" has a letter other than r, w, m"
        );
    }

    #[test]
    fn encoding() {
        let p = compile_device_filter(&runc_defaults()).unwrap();
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), 8 * p.insns.len());
        if cfg!(target_endian = "little") {
            // r2 = *(u32 *)(r1 +0); r4 = *(u32 *)(r1 +4); if r2 != 2 goto +4; exit
            assert_eq!(bytes[..8], [0x61, 0x12, 0, 0, 0, 0, 0, 0]);
            assert_eq!(bytes[32..40], [0x61, 0x14, 4, 0, 0, 0, 0, 0]);
            assert_eq!(bytes[48..56], [0x55, 0x02, 4, 0, 2, 0, 0, 0]);
            assert_eq!(p.insns[54].to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        }
        let w1 = Insn::alu32_imm(MOV, R1, -1);
        assert_eq!(w1.to_string(), "w1 = -1");
        assert_eq!(Insn::goto(3).to_string(), "goto pc+3");
        assert_eq!(w1.to_bytes()[4..], (-1i32).to_ne_bytes());
    }

    fn arb_rule() -> impl proptest::strategy::Strategy<Value = DeviceRule> {
        use proptest::prelude::*;
        let number = prop_oneof![
            3 => Just(None),
            6 => (0i64..4).prop_map(Some),
            1 => proptest::sample::select(vec![
                -5i64,
                0x7fff_ffff,
                0x8000_0000,
                0xffff_ffff,
                1 << 32
            ])
            .prop_map(Some),
        ];
        (
            any::<bool>(),
            proptest::sample::select(vec!['a', 'b', 'c']),
            number.clone(),
            number,
            proptest::sample::subsequence(vec!['r', 'w', 'm'], 0..=3).prop_shuffle(),
        )
            .prop_map(|(allow, kind, major, minor, access)| DeviceRule {
                allow,
                kind,
                major,
                minor,
                access: access.into_iter().collect(),
            })
    }

    proptest::proptest! {
        #[test]
        fn program_agrees_with_the_rules(
            rules in proptest::collection::vec(arb_rule(), 0..10),
        ) {
            if let Err(e) = agrees(&rules) {
                proptest::prop_assert!(false, "{}", e);
            }
        }
    }
}
