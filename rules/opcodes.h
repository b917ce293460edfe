/*
 * opcodes.h - the VM's instruction set, defined once (jq's opcode_list.h).
 * OP(name, operands, stack, pure) -- operands say which instruction fields
 * the op reads; stack is its net effect on the stack depth (CALL: 1 - argc,
 * computed where it is emitted); pure says whether constant operands give a
 * constant result, so the code generator may fold it (CALL: unless the
 * function reads more than its arguments, like attr() and prev()). vm.c
 * documents each op at its case, gen.c emits and folds them, dump.c prints
 * them.
 *
 * An instruction is {op, a, b, c}: a and b small, c a 32-bit index or jump
 * target. The VM is a stack machine over vg_value; a value that is missing
 * (SQL NULL) flows through arithmetic as missing and through comparisons as
 * unknown (a missing bool).
 */
#define VG_OPCODES(OP)                                                                             \
    OP(CONST, "c=const", 1, 1)                                                                     \
    OP(FIELD, "c=slot", 1, 0)                                                                      \
    OP(COL, "c=column", 1, 0)                                                                      \
    OP(CONV, "a=kind c=enum", 0, 0)                                                                \
    OP(STEPFIELD, "b=step c=slot", 1, 0)                                                           \
    OP(ATTR, "", 0, 0)                                                                             \
    OP(STEPATTR, "b=step", 0, 0)                                                                   \
    OP(AGG, "c=aggregate", 1, 0)                                                                   \
    OP(PREV, "c=prev", 1, 0)                                                                       \
    OP(NEG, "a=kind", 0, 1)                                                                        \
    OP(ADD, "a=kind", -1, 1)                                                                       \
    OP(SUB, "a=kind", -1, 1)                                                                       \
    OP(MUL, "a=kind", -1, 1)                                                                       \
    OP(DIV, "a=kind", -1, 1)                                                                       \
    OP(MOD, "a=kind", -1, 1)                                                                       \
    OP(CONCAT, "", -1, 1)                                                                          \
    OP(EQ, "", -1, 1)                                                                              \
    OP(NE, "", -1, 1)                                                                              \
    OP(LT, "", -1, 1)                                                                              \
    OP(LE, "", -1, 1)                                                                              \
    OP(GT, "", -1, 1)                                                                              \
    OP(GE, "", -1, 1)                                                                              \
    OP(SEQ, "", -1, 1)                                                                             \
    OP(SNE, "", -1, 1)                                                                             \
    OP(SLT, "", -1, 1)                                                                             \
    OP(SLE, "", -1, 1)                                                                             \
    OP(SGT, "", -1, 1)                                                                             \
    OP(SGE, "", -1, 1)                                                                             \
    OP(NOT, "", 0, 1)                                                                              \
    OP(AND, "", -1, 1)                                                                             \
    OP(OR, "", -1, 1)                                                                              \
    OP(JFALSE, "c=target", 0, 0)                                                                   \
    OP(JTRUE, "c=target", 0, 0)                                                                    \
    OP(IN, "a=negate c=set", 0, 0)                                                                 \
    OP(MATCH, "a=negate c=regex", 0, 0)                                                            \
    OP(CALL, "a=function b=argc", 0, 1)                                                            \
    OP(RET, "", 0, 0)
