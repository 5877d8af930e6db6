" syntax/nnl.vim — Vim syntax for nnl, the language of nnlc (docs/language.md).
" Keywords from compiler/tokens.def, builtin names from compiler/builtins.def,
" compiler/ops.def and stdlib/*.nnl;
" tests/editors/check_editors.py checks that every one is named here.
" Install: editors/README.md.

if exists("b:current_syntax")
  finish
endif
let s:cpo_save = &cpo
set cpo&vim

" Reserved words: never names.
syn keyword nnlReserved return
syn keyword nnlBoolean true false

" Built-in values, and log( (also a train key): matches, not keywords, so that the
" declarations and train keys below, defined later, win where they start at the same place
" (a :syn keyword would win over any match).
syn match nnlValue "\<\%(pi\|epoch\|step\|epochs\|fan_in\|fan_out\|param\|grad\|all\)\>"
syn match nnlBuiltin "\<log\>\ze\s*("

" Contextual keywords (docs/language.md, section 3): a keyword at the start of a statement
" (a line's start, or after '{' or ';') before a name, or for import before a string;
" elsewhere an ordinary name, so they are matched in place, not as :syn keyword.
syn match nnlDeclaration "\%(^\|[{;]\)\s*\zs\<\%(fn\|loss\|metric\|layer\|optimizer\|model\|data\|train\|param\|state\)\>\ze\s\+\h" nextgroup=nnlDeclName skipwhite
syn match nnlDeclName "\h\w*" contained
syn match nnlImport "\%(^\|[{;]\)\s*\zs\<import\>\ze\s*\""

" A key of a train block: at a statement's start, before '='.
syn match nnlTrainKey "\%(^\|[{;]\)\s*\zs\<\%(data\|validate\|loss\|optimizer\|epochs\|batch\|seed\|shuffle\|metrics\|log\|log_every\|clip_norm\|clip_value\|l1\|l2\|checkpoint\|checkpoint_every\|checkpoint_every_steps\|keep\|plot\)\>\ze\s*=[^=]"

" Operations built into the compiler, and the data sources.
syn keyword nnlBuiltin exp sqrt abs sign tanh erf sin cos floor min max where sum mean
syn keyword nnlBuiltin logsumexp pick onehot argmax dim reshape flatten rand randn
syn keyword nnlBuiltin convolve2d max_pool2d avg_pool2d drop batch_normalize
syn keyword nnlBuiltin csv split idx npy

" The standard library: activations, initializers, layers, losses, metrics, optimizers,
" schedules.
syn keyword nnlStdlib identity sigmoid relu leaky_relu elu gelu silu softplus softmax
syn keyword nnlStdlib zeros ones constant uniform normal glorot_uniform glorot_normal
syn keyword nnlStdlib he_uniform he_normal pytorch_uniform pytorch_bias
syn keyword nnlStdlib dense conv2d max_pool avg_pool dropout batch_norm
syn keyword nnlStdlib mse mae huber bce bce_logits cross_entropy
syn keyword nnlStdlib accuracy
syn keyword nnlStdlib sgd adam adamw adagrad rmsprop adadelta adamax nadam rprop
syn keyword nnlStdlib step_decay multistep exponential inverse_time cosine warmup polynomial

" Numbers: 12, 0.5, 1e-3, .5, 2.5e+4.
syn match nnlNumber "\<\d\+\%(\.\d\+\)\=\%([eE][+-]\=\d\+\)\=\>"
syn match nnlNumber "\%(\w\)\@<!\.\d\+\%([eE][+-]\=\d\+\)\=\>"

" Strings end on their line; escapes \n \t \r \0 \\ \".
syn match nnlEscape "\\[nrt0\\\"]" contained
syn match nnlBadEscape "\\[^nrt0\\\"]" contained
syn region nnlString start=+"+ skip=+\\\\\|\\"+ end=+"+ end=+$+ contains=nnlEscape,nnlBadEscape oneline

syn match nnlOperator "[-+*/]=\|==\|!=\|<=\|>=\|[-+*/^@<>=]"

syn match nnlComment "#.*$" contains=nnlTodo
syn keyword nnlTodo TODO FIXME XXX contained

hi def link nnlReserved Statement
hi def link nnlBoolean Boolean
hi def link nnlDeclaration Keyword
hi def link nnlDeclName Function
hi def link nnlImport Include
hi def link nnlTrainKey Identifier
hi def link nnlBuiltin Function
hi def link nnlValue Constant
hi def link nnlStdlib Function
hi def link nnlNumber Number
hi def link nnlString String
hi def link nnlEscape SpecialChar
hi def link nnlBadEscape Error
hi def link nnlOperator Operator
hi def link nnlComment Comment
hi def link nnlTodo Todo

let b:current_syntax = "nnl"
let &cpo = s:cpo_save
unlet s:cpo_save
