/*
 * opcodes.h - the VM's instruction set, defined once (jq's opcode_list.h).
 * OP(name, operands) -- operands say which instruction fields the op reads;
 * vm.c documents each op at its case, gen.c emits them, dump.c prints them.
 *
 * An instruction is {op, a, b, c}: a and b small, c a 32-bit index or jump
 * target. The VM is a stack machine over vg_value; a value that is missing
 * (SQL NULL) flows through arithmetic as missing and through comparisons as
 * unknown (a missing bool).
 */
#define VG_OPCODES(OP)                                                                             \
    OP(CONST, "c=const")                                                                           \
    OP(FIELD, "c=slot")                                                                            \
    OP(COL, "c=column")                                                                            \
    OP(CONV, "a=kind c=enum")                                                                      \
    OP(STEPFIELD, "b=step c=slot")                                                                 \
    OP(ATTR, "")                                                                                   \
    OP(STEPATTR, "b=step")                                                                         \
    OP(AGG, "c=aggregate")                                                                         \
    OP(PREV, "c=prev")                                                                             \
    OP(NEG, "a=kind")                                                                              \
    OP(ADD, "a=kind")                                                                              \
    OP(SUB, "a=kind")                                                                              \
    OP(MUL, "a=kind")                                                                              \
    OP(DIV, "a=kind")                                                                              \
    OP(MOD, "a=kind")                                                                              \
    OP(CONCAT, "")                                                                                 \
    OP(EQ, "")                                                                                     \
    OP(NE, "")                                                                                     \
    OP(LT, "")                                                                                     \
    OP(LE, "")                                                                                     \
    OP(GT, "")                                                                                     \
    OP(GE, "")                                                                                     \
    OP(SEQ, "")                                                                                    \
    OP(SNE, "")                                                                                    \
    OP(SLT, "")                                                                                    \
    OP(SLE, "")                                                                                    \
    OP(SGT, "")                                                                                    \
    OP(SGE, "")                                                                                    \
    OP(NOT, "")                                                                                    \
    OP(AND, "")                                                                                    \
    OP(OR, "")                                                                                     \
    OP(JFALSE, "c=target")                                                                         \
    OP(JTRUE, "c=target")                                                                          \
    OP(IN, "a=negate c=set")                                                                       \
    OP(MATCH, "a=negate c=regex")                                                                  \
    OP(CALL, "a=function b=argc")                                                                  \
    OP(RET, "")
