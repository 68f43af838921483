import { TYPE, type MessageFormatElement } from '@formatjs/icu-messageformat-parser';

/** A copy of the message with each literal text passed through `fn`. */
export function mapLiterals(ast: MessageFormatElement[], fn: (text: string) => string): MessageFormatElement[] {
  return ast.map((el) => {
    if (el.type === TYPE.literal) return { ...el, value: fn(el.value) };
    if (el.type === TYPE.tag) return { ...el, children: mapLiterals(el.children, fn) };
    if (el.type === TYPE.plural || el.type === TYPE.select) {
      return {
        ...el,
        options: Object.fromEntries(Object.entries(el.options).map(([k, o]) => [k, { ...o, value: mapLiterals(o.value, fn) }])),
      } as MessageFormatElement;
    }
    return el;
  });
}
