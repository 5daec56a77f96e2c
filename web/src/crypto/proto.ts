// The few protobuf encodings the Parley layer writes itself (Sender Keys
// messages, the PreKeySignalMessage fix-up): varint and length-delimited
// fields, as libsignal-protocol-c's protobuf-c writes them (field order).

export type Field = { no: number; wire: 0 | 2; int?: number; bytes?: Uint8Array };

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

export function encode(fields: Field[]): Uint8Array {
  const out: number[] = [];
  for (const f of fields) {
    out.push(...varint((f.no << 3) | f.wire));
    if (f.wire === 0) {
      out.push(...varint(f.int ?? 0));
    } else {
      const b = f.bytes ?? new Uint8Array();
      out.push(...varint(b.byteLength));
      for (const x of b) out.push(x);
    }
  }
  return new Uint8Array(out);
}

// Parses a message of varint (0) and length-delimited (2) fields; throws on
// anything else or on truncation (the input is hostile).
export function decode(buf: Uint8Array): Field[] {
  const fields: Field[] = [];
  let at = 0;
  const readVarint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (at >= buf.length || shift > 35) throw new Error('protobuf: bad varint');
      const b = buf[at++];
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
      shift += 7;
    }
  };
  while (at < buf.length) {
    const key = readVarint();
    const no = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      fields.push({ no, wire: 0, int: readVarint() });
    } else if (wire === 2) {
      const n = readVarint();
      if (at + n > buf.length) throw new Error('protobuf: truncated field');
      fields.push({ no, wire: 2, bytes: buf.slice(at, at + n) });
      at += n;
    } else {
      throw new Error('protobuf: unsupported wire type ' + wire);
    }
  }
  return fields;
}

export function intField(fields: Field[], no: number): number | undefined {
  return fields.find((f) => f.no === no && f.wire === 0)?.int;
}

export function bytesField(fields: Field[], no: number): Uint8Array | undefined {
  return fields.find((f) => f.no === no && f.wire === 2)?.bytes;
}
