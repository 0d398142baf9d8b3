/**
 * The accelerator probe's boot sector: 512 bytes of x86 machine code, assembled by hand here
 * (no assembler at run time), that the firmware loads at 0x7c00 and that walks the way every
 * 64-bit boot loader walks: real mode -> protected mode (a GDT, CR0.PE) -> long mode (PAE
 * paging, EFER.LME, CR0.PG, a 64-bit code segment). At each stage it writes a marker line to
 * the first serial port (I/O port 0x3f8), then halts. A KVM that cannot run a boot loader
 * (the nested "emulation failure" in real-mode or mode-switch code) stops before the last one.
 *
 * Checked against GNU as: the same source in AT&T syntax (`as --64`, `.code16`/`.code32`/
 * `.code64`, then `objcopy -O binary`) gives these bytes (but for its alignment padding at
 * b2-b7, nops there, zeros here), and QEMU (`-accel tcg`) prints the three markers from it;
 * test/vm-accel.test.ts boots it.
 */

/** The stages' markers, in the order the code writes them; the last one means a boot can run. */
export const PROBE_MARKERS = ['BACKPROOF-PROBE real mode', 'BACKPROOF-PROBE protected mode', 'BACKPROOF-PROBE long mode'] as const;

/** Where the firmware loads a boot sector. */
const LOAD = 0x7c00;
/** Layout of the sector: code, then the GDT (8-aligned), its descriptor, the three messages. */
const GDT_AT = 0xb8;
const GDTR_AT = 0xd8;
const MSG_AT = 0xde;
/** Identity page tables for long mode, in low memory the firmware no longer needs: PML4, PDPT, PD. */
const PML4 = 0x1000;
const PDPT = 0x2000;
const PD = 0x3000;
const SERIAL = 0x3f8;

const le16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

/** The 512-byte boot sector (a fresh copy). */
export function probeBootSector(): Buffer {
  const messages = PROBE_MARKERS.map((m) => Buffer.from(`${m}\r\n\0`, 'latin1'));
  const msgAt: number[] = [];
  let at = MSG_AT;
  for (const m of messages) {
    msgAt.push(LOAD + at);
    at += m.length;
  }
  const [msgReal, msgProt, msgLong] = msgAt as [number, number, number];
  const PM = 0x58; // offset of the 32-bit code
  const LM = 0x9d; // offset of the 64-bit code

  // prettier-ignore
  const code16 = [
    0xea, ...le16(LOAD + 5), ...le16(0), // 00 ljmp 0000:7c05    CS=0 whatever segment the firmware used
    0xfa,                                // 05 cli
    0x31, 0xc0,                          // 06 xor ax, ax
    0x8e, 0xd8,                          // 08 mov ds, ax
    0x8e, 0xc0,                          // 0a mov es, ax
    0x8e, 0xd0,                          // 0c mov ss, ax
    0xbc, ...le16(LOAD),                 // 0e mov sp, 7c00      stack below the sector
    0xfc,                                // 11 cld
    0xbe, ...le16(msgReal),              // 12 mov si, msg_real
    0xba, ...le16(SERIAL),               // 15 mov dx, 3f8
    0xac,                                // 18 lodsb             print: al = [si++]
    0x84, 0xc0,                          // 19 test al, al
    0x74, 0x03,                          // 1b jz +3 (20)
    0xee,                                // 1d out dx, al
    0xeb, 0xf8,                          // 1e jmp 18
    0xbf, ...le16(PML4),                 // 20 mov di, 1000      zero the three page-table pages
    0xb9, ...le16(0x1800),               // 23 mov cx, 1800      words
    0x31, 0xc0,                          // 26 xor ax, ax
    0xf3, 0xab,                          // 28 rep stosw
    0xc7, 0x06, ...le16(PML4), ...le16(PDPT | 3), // 2a mov word [1000], 2003  PML4[0] -> PDPT, present+rw
    0xc7, 0x06, ...le16(PDPT), ...le16(PD | 3),   // 30 mov word [2000], 3003  PDPT[0] -> PD
    0xc7, 0x06, ...le16(PD), ...le16(0x83),       // 36 mov word [3000], 0083  PD[0]: 2 MiB page at 0, present+rw+PS
    0xe4, 0x92,                          // 3c in al, 92         A20 on (fast gate)
    0x0c, 0x02,                          // 3e or al, 2
    0xe6, 0x92,                          // 40 out 92, al
    0x66, 0x0f, 0x01, 0x16, ...le16(LOAD + GDTR_AT), // 42 lgdt dword [gdtr]
    0x0f, 0x20, 0xc0,                    // 48 mov eax, cr0
    0x0c, 0x01,                          // 4b or al, 1          CR0.PE
    0x0f, 0x22, 0xc0,                    // 4d mov cr0, eax
    0x66, 0xea, ...le32(LOAD + PM), ...le16(0x08), // 50 jmp dword 08:pm   32-bit code segment
  ];
  // prettier-ignore
  const code32 = [
    0x66, 0xb8, ...le16(0x10),           // 58 mov ax, 10        flat data segment
    0x8e, 0xd8,                          // 5c mov ds, ax
    0x8e, 0xc0,                          // 5e mov es, ax
    0x8e, 0xd0,                          // 60 mov ss, ax
    0xbe, ...le32(msgProt),              // 62 mov esi, msg_prot (dx is still 3f8)
    0xac,                                // 67 lodsb
    0x84, 0xc0,                          // 68 test al, al
    0x74, 0x03,                          // 6a jz +3 (6f)
    0xee,                                // 6c out dx, al
    0xeb, 0xf8,                          // 6d jmp 67
    0x0f, 0x20, 0xe0,                    // 6f mov eax, cr4
    0x0c, 0x20,                          // 72 or al, 20         CR4.PAE
    0x0f, 0x22, 0xe0,                    // 74 mov cr4, eax
    0xb8, ...le32(PML4),                 // 77 mov eax, 1000
    0x0f, 0x22, 0xd8,                    // 7c mov cr3, eax
    0xb9, ...le32(0xc0000080),           // 7f mov ecx, c0000080 EFER
    0x0f, 0x32,                          // 84 rdmsr             (clobbers edx)
    0x80, 0xcc, 0x01,                    // 86 or ah, 1          EFER.LME
    0x0f, 0x30,                          // 89 wrmsr
    0x0f, 0x20, 0xc0,                    // 8b mov eax, cr0
    0x0d, ...le32(0x80000000),           // 8e or eax, 80000000  CR0.PG: long mode is active
    0x0f, 0x22, 0xc0,                    // 93 mov cr0, eax
    0xea, ...le32(LOAD + LM), ...le16(0x18), // 96 jmp 18:lm       64-bit code segment
  ];
  // prettier-ignore
  const code64 = [
    0xbe, ...le32(msgLong),              // 9d mov esi, msg_long (zero-extends into rsi)
    0x66, 0xba, ...le16(SERIAL),         // a2 mov dx, 3f8       again: rdmsr took it
    0xac,                                // a6 lodsb
    0x84, 0xc0,                          // a7 test al, al
    0x74, 0x03,                          // a9 jz +3 (ae)
    0xee,                                // ab out dx, al
    0xeb, 0xf8,                          // ac jmp a6
    0xfa,                                // ae cli
    0xf4,                                // af hlt
    0xeb, 0xfc,                          // b0 jmp ae
  ];
  // prettier-ignore
  const gdt = [
    ...le32(0), ...le32(0),                    // b8 null
    ...le32(0x0000ffff), ...le32(0x00cf9a00),  // c0 08: code, 32-bit, base 0, 4 GiB
    ...le32(0x0000ffff), ...le32(0x00cf9200),  // c8 10: data, base 0, 4 GiB
    ...le32(0x0000ffff), ...le32(0x00af9a00),  // d0 18: code, 64-bit (L=1, D=0)
  ];
  const gdtr = [...le16(gdt.length - 1), ...le32(LOAD + GDT_AT)]; // d8 limit, base

  const sector = Buffer.alloc(512);
  const place = (offset: number, bytes: number[] | Buffer): void => {
    Buffer.from(bytes).copy(sector, offset);
  };
  place(0x00, code16);
  place(PM, code32);
  place(LM, code64);
  place(GDT_AT, gdt);
  place(GDTR_AT, gdtr);
  let m = MSG_AT;
  for (const msg of messages) {
    place(m, msg);
    m += msg.length;
  }
  if (0x00 + code16.length !== PM || PM + code32.length !== LM || LM + code64.length > GDT_AT || m > 510) throw new Error('the probe boot sector does not fit its layout');
  sector[510] = 0x55; // the boot signature
  sector[511] = 0xaa;
  return sector;
}
